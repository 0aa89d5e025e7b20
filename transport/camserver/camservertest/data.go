package camservertest

import (
	"encoding/json"
	"net/http"
	"strings"
)

const pageSize = 32

func (s *Server) addRecord(p params, ss *session, body []byte) (any, int) {
	if len(body) == 0 {
		return nil, codeEmptyRequest
	}
	meta := p.strOr("meta", "JPEG")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextRID++
	rec := &Record{RID: s.nextRID, Device: ss.device, Meta: meta, Stamp: s.stampLocked(), Data: append([]byte(nil), body...)}
	s.records = append(s.records, rec)
	s.log.Info("camserver fake: record added", "device", ss.device, "rid", rec.RID, "meta", meta, "bytes", len(body))
	return nil, 0
}

func (s *Server) getRecordCount(_ *http.Request, p params, _ *session) (any, int) {
	stamp := p.str("stamp")
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []map[string]any{}
	for _, r := range s.records {
		if r.Stamp > stamp && len(list) < pageSize {
			list = append(list, map[string]any{"rid": r.RID, "device": r.Device, "stamp": r.Stamp})
		}
	}
	return map[string]any{"records": list}, 0
}

func (s *Server) findLocked(rid int64) *Record {
	for _, r := range s.records {
		if r.RID == rid {
			return r
		}
	}
	return nil
}

func (s *Server) getRecordMeta(_ *http.Request, p params, _ *session) (any, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.findLocked(p.num("rid"))
	if r == nil {
		return nil, codeNoSuchRecord
	}
	return map[string]any{"device": r.Device, "meta": r.Meta, "stamp": r.Stamp}, 0
}

func (s *Server) recordData(p params) ([]byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.findLocked(p.num("rid"))
	if r == nil {
		return nil, codeNoSuchRecord
	}
	if len(r.Data) == 0 {
		return nil, codeNoData
	}
	return r.Data, 0
}

// deleteRecords copies the server: one element must be ≥ 0; with several,
// a negative element also deletes every id ≤ the smallest listed id.
func (s *Server) deleteRecords(_ *http.Request, p params, _ *session) (any, int) {
	var ids []int64
	if json.Unmarshal([]byte(p.str("records")), &ids) != nil || len(ids) == 0 {
		return nil, codeMalformed
	}
	del := map[int64]bool{}
	smallest, neg, nonneg := ids[0], false, 0
	for _, id := range ids {
		smallest = min(smallest, id)
		if id < 0 {
			neg = true
		} else {
			nonneg++
			del[id] = true
		}
	}
	if nonneg == 0 {
		return nil, codeMalformed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.records[:0]
	for _, r := range s.records {
		if del[r.RID] || (neg && len(ids) > 1 && r.RID <= smallest) {
			continue
		}
		kept = append(kept, r)
	}
	s.records = kept
	return nil, 0
}

func (s *Server) addMsgs(_ *http.Request, p params, ss *session) (any, int) {
	type in struct {
		Msg    string          `json:"msg"`
		Target string          `json:"target"`
		Params json.RawMessage `json:"params"`
	}
	var list []in
	if p.has("msgs") {
		if json.Unmarshal([]byte(p.str("msgs")), &list) != nil {
			return nil, codeMalformed
		}
	} else if m := p.str("msg"); m != "" {
		list = []in{{Msg: m, Target: p.str("target"), Params: p.raw("params")}}
	}
	if len(list) == 0 {
		return nil, codeMalformed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range list {
		if m.Msg == "" {
			return nil, codeMalformed
		}
		if m.Msg == "sync" {
			s.syncLocked(ss.device)
			continue
		}
		msg := &message{from: ss.device, target: m.Target, msg: m.Msg, params: paramsJSON(m.Params),
			stamp: s.stampLocked(), at: s.now()}
		if !s.opts.PoisonParserFail && !isObject(msg.params) && !s.dbFailed {
			s.dbFailed = true
			s.log.Warn("camserver fake: message with non-object params; getMsgs answers DATABASE_FAIL until restart", "from", ss.device)
		}
		s.msgs = append(s.msgs, msg)
		s.log.Info("camserver fake: message", "from", ss.device, "to", m.Target, "msg", m.Msg)
	}
	return nil, 0
}

func (s *Server) syncLocked(device string) {
	s.bookmark[device] = s.stampLocked()
	s.bookAt[device] = s.now()
}

// getMsgs returns messages to this device (or broadcast) from others, newer
// than stamp, oldest first, 32 at most. The sync token means "from my
// bookmark"; an absent stamp means everything still stored.
func (s *Server) getMsgs(p params, ss *session, sync bool) (any, int) {
	stamp := p.str("stamp")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dbFailed {
		return nil, codeDatabaseFail
	}
	if sync {
		s.syncLocked(ss.device)
	}
	if strings.ReplaceAll(stamp, " ", "") == `{"msg":"sync"}` {
		stamp = s.bookmark[ss.device] // after a sync: now, so nothing older
	}
	list := []map[string]any{}
	for _, m := range s.msgs {
		if m.from == ss.device || (m.target != "" && m.target != ss.device) || m.stamp <= stamp {
			continue
		}
		if len(list) == pageSize {
			break
		}
		if !isObject(m.params) {
			if s.opts.PoisonParserFail {
				return nil, codeJSONParserFail
			}
			continue // the running server: DATABASE_FAIL until a restart, not listed after it
		}
		list = append(list, map[string]any{"msg": m.msg, "device": m.from, "params": json.RawMessage(m.params), "stamp": m.stamp})
	}
	return map[string]any{"msgs": list}, 0
}

// isObject reports whether stored params are a JSON object.
func isObject(params string) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal([]byte(params), &obj) == nil
}
