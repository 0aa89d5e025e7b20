package camservertest

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// Result codes the fake sends (the link package names them).
const (
	codeDatabaseFail   = 3
	codeJSONParserFail = 4
	codeNoSuchSession  = 6
	codeNoSuchUser     = 7
	codeNoDevices      = 8
	codeNoSuchRecord   = 9
	codeNoData         = 10
	codeEmptyRequest   = 11
	codeMalformed      = 12
	codeNoSuchDevice   = 15
)

type handler func(s *Server, r *http.Request, p params, ss *session) (any, int)

var jsonTable = map[string]handler{
	"/authorize.json":        nil, // special: no session
	"/getServerTime.json":    nil, // special: no session, uncounted
	"/heartBit.json":         func(*Server, *http.Request, params, *session) (any, int) { return nil, 0 },
	"/getConfig.json":        (*Server).getConfig,
	"/setConfig.json":        (*Server).setConfig,
	"/addRecord.json":        nil, // special: the body is the blob
	"/getRecordCount.json":   (*Server).getRecordCount,
	"/getRecordMeta.json":    (*Server).getRecordMeta,
	"/getRecordData.json":    nil, // special: raw answer
	"/deleteRecords.json":    (*Server).deleteRecords,
	"/addMsgs.json":          (*Server).addMsgs,
	"/getMsgs.json":          func(s *Server, r *http.Request, p params, ss *session) (any, int) { return s.getMsgs(p, ss, false) },
	"/getMsgsAndSync.json":   func(s *Server, r *http.Request, p params, ss *session) (any, int) { return s.getMsgs(p, ss, true) },
	"/getDevicesOnline.json": (*Server).getDevicesOnline,
	"/getStreams.json":       (*Server).getStreams,
}

// route copies the server's router: POST → JSON table (404 if absent), any
// other method → input.raw (PUT), output.raw (GET), else 405.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls[r.URL.Path]++
	fail, retryAfter := 0, s.failRetryAfter
	if s.failLeft[r.URL.Path] > 0 {
		s.failLeft[r.URL.Path]--
		fail = s.failNext[r.URL.Path]
	}
	s.mu.Unlock()
	if fail != 0 {
		drain(r)
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(fail)
		return
	}
	w.Header().Set("Content-Type", "text/html") // as the real server; never dispatch on it
	if r.Method == http.MethodPost {
		h, ok := jsonTable[r.URL.Path]
		if !ok {
			drain(r)
			http.NotFound(w, r)
			return
		}
		s.serveJSON(w, r, r.URL.Path, h)
		return
	}
	switch {
	case r.URL.Path == "/input.raw" && r.Method == http.MethodPut:
		s.inputRaw(w, r)
	case r.URL.Path == "/output.raw" && r.Method == http.MethodGet:
		s.outputRaw(w, r)
	case r.URL.Path == "/status" && r.Method == http.MethodGet:
		s.status(w)
	default:
		drain(r)
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// drain reads (a bounded amount of) a refused request's body first, as the
// real server does, so the client sees the status rather than a reset.
func drain(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
}

// maxJSONBody bounds what the fake buffers for one request.
const maxJSONBody = 64 << 20

func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request, path string, h handler) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody))
	declared := max(r.ContentLength, 0)
	if err != nil || int64(len(body)) != declared {
		// The real server resets the stream and sends GOAWAY: the whole
		// connection ends.
		s.mu.Lock()
		s.stats.LengthMismatch++
		s.mu.Unlock()
		s.log.Warn("camserver fake: content-length mismatch; dropping the connection",
			"path", path, "declared", r.ContentLength, "got", len(body))
		s.dropConn(r)
		panic(http.ErrAbortHandler)
	}
	p := params{query: r.URL.Query()}
	if path != "/addRecord.json" && len(body) > 0 {
		if json.Unmarshal(body, &p.body) != nil {
			s.reply(w, nil, codeJSONParserFail)
			return
		}
	}
	switch path {
	case "/authorize.json":
		v, code := s.authorize(r, p)
		s.reply(w, v, code)
		return
	case "/getServerTime.json":
		s.mu.Lock()
		st := s.now().UTC().Format("2006-01-02 15:04:05")
		s.mu.Unlock()
		s.reply(w, map[string]any{"stamp": st}, 0)
		return
	}
	s.mu.Lock()
	ss := s.checkLocked(r, p.str("shash"))
	s.stats.Requests++
	hook := s.reqHook
	var dev string
	var at time.Time
	if ss != nil {
		dev, at = ss.device, ss.last
	}
	s.mu.Unlock()
	if ss == nil {
		s.reply(w, nil, codeNoSuchSession)
		return
	}
	if hook != nil {
		hook(path, dev, at)
	}
	if path == "/addRecord.json" {
		v, code := s.addRecord(p, ss, body)
		s.reply(w, v, code)
		return
	}
	if path == "/getRecordData.json" {
		data, code := s.recordData(p)
		if code != 0 {
			s.reply(w, nil, code)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
		return
	}
	v, code := h(s, r, p, ss)
	s.reply(w, v, code)
}

// checkLocked validates a session id against the remote IP and counts the
// request as activity.
func (s *Server) checkLocked(r *http.Request, shash string) *session {
	ss, ok := s.sessions[shash]
	if !ok || ss.ip != s.remoteIP(r) {
		return nil
	}
	ss.last = s.now()
	ss.total++
	ss.perMin++
	return ss
}

func (s *Server) reply(w http.ResponseWriter, v any, code int) {
	var b []byte
	if code != 0 {
		b = []byte(`{"result":"BAD","code":` + strconv.Itoa(code) + `}`)
	} else {
		m := map[string]any{}
		if v != nil {
			raw, _ := json.Marshal(v)
			_ = json.Unmarshal(raw, &m)
		}
		m["result"] = "OK"
		b, _ = json.Marshal(m)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func (s *Server) authorize(r *http.Request, p params) (any, int) {
	name, pass, device := p.str("name"), p.str("pass"), p.str("device")
	if name == "" || pass == "" || device == "" {
		return nil, codeMalformed
	}
	if want, ok := s.opts.Users[name]; !ok || want != pass {
		return nil, codeNoSuchUser
	}
	meta := p.strOr("meta", "{}")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessSeq++
	ss := &session{shash: newShash(), device: device, meta: meta, ip: s.remoteIP(r), last: s.now(), created: s.sessSeq}
	s.sessions[ss.shash] = ss
	s.stats.Authorizations++
	s.log.Info("camserver fake: device authorized", "device", device)
	return map[string]any{"shash": ss.shash}, 0
}

func (s *Server) getConfig(_ *http.Request, _ params, _ *session) (any, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]map[string]any, 0, len(s.config))
	for _, k := range s.config {
		fv := k.dv
		if k.hasFV {
			fv = k.fv
		}
		list = append(list, map[string]any{"kind": k.kind, "descr": k.descr, "miv": k.miv, "mav": k.mav, "dv": k.dv, "fv": fv})
	}
	return map[string]any{"config": list}, 0
}

func (s *Server) setConfig(_ *http.Request, p params, _ *session) (any, int) {
	var list []struct {
		Kind int      `json:"kind"`
		FV   *float64 `json:"fv"`
	}
	if json.Unmarshal([]byte(p.str("config")), &list) != nil {
		return nil, codeMalformed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range list {
		for _, k := range s.config {
			if k.kind == e.Kind && e.FV != nil {
				k.fv, k.hasFV = *e.FV, true
			}
		}
	}
	return nil, 0
}

func (s *Server) getDevicesOnline(_ *http.Request, _ params, _ *session) (any, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]string{}
	for _, ss := range s.sessions {
		seen[ss.device] = ss.meta
	}
	if len(seen) == 0 {
		return nil, codeNoDevices
	}
	list := make([]map[string]string, 0, len(seen))
	for d, m := range seen {
		list = append(list, map[string]string{"device": d, "meta": m})
	}
	sort.Slice(list, func(i, j int) bool { return list[i]["device"] < list[j]["device"] })
	return map[string]any{"devices": list}, 0
}

func (s *Server) getStreams(_ *http.Request, _ params, _ *session) (any, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []map[string]any{}
	for dev, st := range s.streams {
		if ss := s.newestLocked(dev); ss != nil && ss.shash == st.shash {
			list = append(list, map[string]any{"device": dev, "subproto": st.subproto, "delta": st.delta})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i]["device"].(string) < list[j]["device"].(string) })
	return map[string]any{"devices": list}, 0
}

// status is the fake's small JSON status page.
func (s *Server) status(w http.ResponseWriter) {
	s.mu.Lock()
	devs := map[string]int{}
	for _, ss := range s.sessions {
		devs[ss.device]++
	}
	streams := []string{}
	for d := range s.streams {
		streams = append(streams, d)
	}
	out := map[string]any{"sessions": devs, "streams": streams, "records": len(s.records),
		"messages": len(s.msgs), "stats": s.stats}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
