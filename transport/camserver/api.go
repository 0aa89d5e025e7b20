package camserver

import (
	"context"
	"encoding/json"
	"fmt"
)

// The JSON endpoints. Each is one counted request (plus one authorize and
// getConfig when the session had to be renewed).

// HeartBit refreshes the session.
func (c *Client) HeartBit(ctx context.Context) error {
	_, err := c.call(ctx, "heartBit.json", nil)
	return err
}

// GetConfig returns the account limits as the server lists them.
func (c *Client) GetConfig(ctx context.Context) ([]ConfigEntry, error) {
	r, err := c.call(ctx, "getConfig.json", nil)
	if err != nil {
		return nil, err
	}
	return r.Config, nil
}

// SetConfig changes account-wide limits: only on the operator's request.
func (c *Client) SetConfig(ctx context.Context, values map[int]float64) error {
	list := make([]map[string]any, 0, len(values))
	for k, v := range values {
		list = append(list, map[string]any{"kind": k, "fv": v})
	}
	_, err := c.call(ctx, "setConfig.json", map[string]any{"config": list})
	return err
}

// AddMsgs sends messages; an empty Target is a broadcast. Params must be a
// JSON object (a bare string breaks getMsgs for every recipient,
// docs/protocols/camera-server.md §6.3).
func (c *Client) AddMsgs(ctx context.Context, msgs ...Message) error {
	list := make([]map[string]any, 0, len(msgs))
	for _, m := range msgs {
		params := m.Params
		if len(params) == 0 {
			params = json.RawMessage("{}")
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(params, &obj); err != nil {
			return fmt.Errorf("addMsgs.json: params of %q must be a JSON object: %w", m.Msg, err)
		}
		list = append(list, map[string]any{"msg": m.Msg, "target": m.Target, "params": params})
	}
	_, err := c.call(ctx, "addMsgs.json", map[string]any{"msgs": list})
	return err
}

// SyncToken asks getMsgs for messages since this device's server bookmark.
const SyncToken = `{"msg":"sync"}`

// GetMsgs returns up to 32 messages newer than stamp (or SyncToken); with
// sync it moves the server bookmark to now first (getMsgsAndSync).
func (c *Client) GetMsgs(ctx context.Context, stamp string, sync bool) ([]Message, error) {
	op := "getMsgs.json"
	if sync {
		op = "getMsgsAndSync.json"
	}
	var s any = stamp
	if stamp == SyncToken {
		s = map[string]string{"msg": "sync"}
	}
	r, err := c.call(ctx, op, map[string]any{"stamp": s})
	if err != nil {
		return nil, err
	}
	return r.Msgs, nil
}

// AddRecord stores blob with meta (the media format, e.g. JPEG). meta goes in
// the query string, where a numeric-looking value would be lost, so it is
// validated like a name.
func (c *Client) AddRecord(ctx context.Context, meta string, blob []byte) error {
	if err := checkName("meta", meta); err != nil {
		return fmt.Errorf("addRecord.json: %w", err)
	}
	if len(blob) == 0 {
		return fmt.Errorf("addRecord.json: empty record")
	}
	if len(blob) > MaxRecord {
		return fmt.Errorf("addRecord.json: record of %d bytes over %d", len(blob), MaxRecord)
	}
	_, _, err := c.do(ctx, "addRecord.json", nil, blob, meta)
	return err
}

// MaxRecord caps one record: the server buffers it in RAM
// (docs/protocols/camera-server.md §2).
const MaxRecord = 8 << 20

// GetRecordCount lists up to 32 records of the account newer than stamp.
func (c *Client) GetRecordCount(ctx context.Context, stamp string) ([]RecordInfo, error) {
	p := map[string]any{}
	if stamp != "" {
		p["stamp"] = stamp
	}
	r, err := c.call(ctx, "getRecordCount.json", p)
	if err != nil {
		return nil, err
	}
	return r.Records, nil
}

// RecordMeta is getRecordMeta.json's answer.
type RecordMeta struct{ Device, Meta, Stamp string }

// GetRecordMeta returns one record's metadata.
func (c *Client) GetRecordMeta(ctx context.Context, rid int64) (RecordMeta, error) {
	r, err := c.call(ctx, "getRecordMeta.json", map[string]any{"rid": rid})
	if err != nil {
		return RecordMeta{}, err
	}
	return RecordMeta{Device: r.Device, Meta: r.Meta, Stamp: r.Stamp}, nil
}

// GetRecordData returns one record's bytes.
func (c *Client) GetRecordData(ctx context.Context, rid int64) ([]byte, error) {
	_, raw, err := c.do(ctx, "getRecordData.json", map[string]any{"rid": rid}, nil, "")
	return raw, err
}

// DeleteRecords deletes records by id. Negative ids have a sweeping meaning
// on the server (docs/protocols/camera-server.md §2), so they are refused here.
func (c *Client) DeleteRecords(ctx context.Context, rids ...int64) error {
	if len(rids) == 0 {
		return nil
	}
	for _, id := range rids {
		if id < 0 {
			return fmt.Errorf("deleteRecords.json: negative record id %d", id)
		}
	}
	_, err := c.call(ctx, "deleteRecords.json", map[string]any{"records": rids})
	return err
}

// GetDevicesOnline lists the account's devices with a live session (ours
// included). NO_DEVICES_ONLINE is an empty list, not an error.
func (c *Client) GetDevicesOnline(ctx context.Context) ([]DeviceInfo, error) {
	r, err := c.call(ctx, "getDevicesOnline.json", nil)
	if err != nil {
		if isCode(err, CodeNoDevicesOnline) {
			return nil, nil
		}
		return nil, err
	}
	return r.Devices, nil
}

// GetStreams lists devices whose newest session has a live input.raw.
func (c *Client) GetStreams(ctx context.Context) ([]DeviceInfo, error) {
	r, err := c.call(ctx, "getStreams.json", nil)
	if err != nil {
		return nil, err
	}
	return r.Devices, nil
}
