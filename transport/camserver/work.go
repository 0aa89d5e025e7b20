package camserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// recordMeta is what the spool keeps with a still.
type recordMeta struct {
	Meta string `json:"meta"` // the server's meta: the media format
	From string `json:"from,omitempty"`
	ID   string `json:"id,omitempty"`
}

// queueRecord hands a record to Work through the spool; a link without a
// spool adds it at once on the live session (waiting for one).
func (l *Link) queueRecord(ctx context.Context, data []byte, meta recordMeta) error {
	if l.deps.Spool == nil {
		c, err := l.waitClient(ctx)
		if err != nil {
			return err
		}
		return c.AddRecord(ctx, meta.Meta, data)
	}
	if _, err := l.deps.Spool.Put("record", meta, strings.NewReader(string(data))); err != nil {
		return fmt.Errorf("snapshot: spool: %w", err)
	}
	return nil
}

// Work delivers spooled records with addRecord whenever a session is up, in
// capture order. It runs for the link's whole life.
func (l *Link) Work(ctx context.Context) error {
	if l.deps.Spool == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return l.deps.Spool.Deliver(ctx, l.deliver, l.opts.Deliver)
}

// deliver is Work's callback for one spooled record: it waits (up to a
// minute) for a session and adds the record on it. Every wait is on ctx, so
// a user cancelling the record or pausing uploads (the console; ctx then
// ends with spool.ErrCancelled or spool.ErrPaused) stops it at once; the
// spool drops or keeps the record and counts no failure.
func (l *Link) deliver(ctx context.Context, it spool.Item, body *os.File) error {
	var meta recordMeta
	if err := json.Unmarshal(it.Meta, &meta); err != nil || meta.Meta == "" {
		meta.Meta = "JPEG"
	}
	if it.Size > MaxRecord {
		return retry.Permanent(fmt.Errorf("record %s: %d bytes over %d", it.ID, it.Size, MaxRecord))
	}
	data := make([]byte, it.Size)
	if _, err := body.ReadAt(data, 0); err != nil {
		return fmt.Errorf("record %s: read: %w", it.ID, err)
	}
	// A deadline on the wait, so wall time: the injected clock has no timers.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := l.waitClient(wctx)
	if err != nil {
		return fmt.Errorf("record %s: no session: %w", it.ID, err)
	}
	if err := c.AddRecord(ctx, meta.Meta, data); err != nil {
		if errors.Is(err, ErrEmptyRequest) || errors.Is(err, ErrMalformedRequest) {
			return retry.Permanent(err)
		}
		return err
	}
	l.deps.Stats.BytesOut.Add(it.Size)
	l.log.Info("camserver: record added", "bytes", it.Size, "meta", meta.Meta)
	return nil
}
