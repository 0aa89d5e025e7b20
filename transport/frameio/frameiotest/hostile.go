package frameiotest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
)

// hostile is the state of EchoCredentials.
type hostile struct {
	on     atomic.Bool
	echoed atomic.Int64 // answers that echoed the Authorization header
}

// EchoTail is what EchoCredentials appends to every echo: escape sequences
// that set a terminal's title and clear its screen, and a forged log line.
const EchoTail = "\x1b]0;pwned\x07\x1b[2J\nlevel=INFO msg=forged"

// EchoCredentials makes the fake hostile, or just careless, while on:
// /v2/devices/me and asset creates answer 500 with a message that repeats
// the Authorization header the device sent (its access token) followed by
// EchoTail, and the device-code answer carries EchoTail in every string a
// pairing user is shown. It is how a server that echoes its input (or a
// proxy's error page) would behave.
func (s *Server) EchoCredentials(on bool) { s.hostile.on.Store(on) }

// Echoed counts the answers that echoed a device's Authorization header.
func (s *Server) Echoed() int64 { return s.hostile.echoed.Load() }

// echoBearer wraps an authorized endpoint for EchoCredentials.
func (s *Server) echoBearer(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.hostile.on.Load() {
			next(w, r)
			return
		}
		s.hostile.echoed.Add(1)
		s.noteVersion(r)
		msg := "cannot serve " + r.Header.Get("Authorization") + EchoTail
		writeJSON(w, http.StatusInternalServerError, map[string]any{"code": 500, "message": msg,
			"error": msg, "errors": []map[string]any{{"title": msg}}})
	}
}

// hostileCode wraps the device-code endpoint for EchoCredentials: the
// answer is the real one (pairing still works) with EchoTail added to the
// device name, the user code and both verification URIs.
func (s *Server) hostileCode(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.hostile.on.Load() {
			next(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next(rec, r)
		var body map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		for _, k := range []string{"name", "user_code", "verification_uri", "verification_uri_complete"} {
			if v, ok := body[k].(string); ok {
				body[k] = v + EchoTail
			}
		}
		body["name"] = body["name"].(string) + " " + r.FormValue("client_secret")
		var b bytes.Buffer
		_ = json.NewEncoder(&b).Encode(body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b.Bytes())
	}
}
