package frameio

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// Phoenix V1 (vsn 1.0.0) object frames (docs/protocols/frameio-c2c.md §4.2):
// {"topic","event","payload","ref"}.
// Frame.io's examples and camera traffic use this form; we never send V2
// arrays.

// Phoenix event names.
const (
	evJoin      = "phx_join"
	evLeave     = "phx_leave"
	evReply     = "phx_reply"
	evError     = "phx_error"
	evClose     = "phx_close"
	evHeartbeat = "heartbeat"
	evStatus    = "status_updated"
	topicPhx    = "phoenix"
)

// Message is one Phoenix V1 frame. Ref is "" for server pushes (null ref).
// Payload is raw JSON: it may be an object or a bare string ("paused").
type Message struct {
	Topic   string
	Event   string
	Payload json.RawMessage
	Ref     string
	JoinRef string
}

// maxFrame bounds a frame we decode; device-socket frames are tiny.
const maxFrame = 1 << 20

// wireMessage is the JSON shape; refs may be strings, numbers or null.
type wireMessage struct {
	Topic   *string         `json:"topic"`
	Event   *string         `json:"event"`
	Payload json.RawMessage `json:"payload"`
	Ref     json.RawMessage `json:"ref"`
	JoinRef json.RawMessage `json:"join_ref,omitempty"`
}

// DecodeMessage parses one frame. It rejects anything that is not a V1
// object with string topic and event, so a V2 array or garbage from a peer
// becomes a clear error instead of a half-filled message.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) > maxFrame {
		return Message{}, fmt.Errorf("phoenix: frame of %d bytes exceeds %d", len(b), maxFrame)
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return Message{}, errors.New("phoenix: frame is not a V1 JSON object")
	}
	var w wireMessage
	if err := json.Unmarshal(t, &w); err != nil {
		return Message{}, fmt.Errorf("phoenix: %w", err)
	}
	if w.Topic == nil || w.Event == nil {
		return Message{}, errors.New("phoenix: frame without topic or event")
	}
	m := Message{Topic: *w.Topic, Event: *w.Event, Payload: w.Payload}
	if len(m.Payload) == 0 {
		m.Payload = json.RawMessage("null")
	}
	var err error
	if m.Ref, err = decodeRef(w.Ref); err != nil {
		return Message{}, fmt.Errorf("phoenix: ref: %w", err)
	}
	if m.JoinRef, err = decodeRef(w.JoinRef); err != nil {
		return Message{}, fmt.Errorf("phoenix: join_ref: %w", err)
	}
	return m, nil
}

func decodeRef(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", errors.New("must be a string, number or null")
	}
	return n.String(), nil
}

// Encode renders m as a V1 frame. An empty Ref is sent as null.
func (m Message) Encode() ([]byte, error) {
	w := struct {
		Topic   string          `json:"topic"`
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
		Ref     *string         `json:"ref"`
		JoinRef *string         `json:"join_ref,omitempty"`
	}{Topic: m.Topic, Event: m.Event, Payload: m.Payload}
	if len(w.Payload) == 0 {
		w.Payload = json.RawMessage("{}")
	}
	if m.Ref != "" {
		w.Ref = &m.Ref
	}
	if m.JoinRef != "" {
		w.JoinRef = &m.JoinRef
	}
	return json.Marshal(w)
}

// Reply is the payload of a phx_reply.
type Reply struct {
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response"`
}

// Reply decodes a phx_reply payload.
func (m Message) Reply() (Reply, error) {
	var r Reply
	if err := json.Unmarshal(m.Payload, &r); err != nil || r.Status == "" {
		return Reply{}, errors.New("phoenix: phx_reply without a status")
	}
	return r, nil
}

// Reason returns the "reason" of an error reply or phx_error payload, with
// sec's secrets masked, cleaned and bounded (it is logged).
func reason(raw json.RawMessage, sec *redact.Secrets) string {
	var r struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(raw, &r) == nil && r.Reason != "" {
		return sec.Peer(r.Reason, maxPeerText)
	}
	return ""
}

// pausedState reads a status_updated payload: a bare "paused"/"resumed" or
// {"status":"paused"} (docs/protocols/frameio-c2c.md §4.2, §4.5). ok is false for anything else.
func pausedState(raw json.RawMessage) (paused, ok bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var o struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(raw, &o) != nil {
			return false, false
		}
		s = o.Status
	}
	switch s {
	case "paused":
		return true, true
	case "resumed", "online":
		return false, true
	}
	return false, false
}

// refs hands out monotonically increasing refs, never reused on a socket.
type refs struct{ n uint64 }

func (r *refs) next() string { r.n++; return strconv.FormatUint(r.n, 10) }

// errSocketForbidden is a 403 on the upgrade: expired or invalid token
// (docs/protocols/frameio-c2c.md §4.1).
var errSocketForbidden = errors.New("socket: HTTP 403 on upgrade (token expired or invalid)")

type wsDialer struct {
	d       *websocket.Dialer
	version string
	waits   *retry.PeerWaits // caps a refused upgrade's wait (nil: no log)
	clk     clock.Clock      // reads a refused upgrade's Retry-After date
}

func newWSDialer(tc *tls.Config, version string, clk clock.Clock) wsDialer {
	d := &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 15 * time.Second,
		TLSClientConfig:  tc,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
	return wsDialer{d: d, version: version, clk: clk}
}

// socketURL adds the token the way Frame.io expects
// (docs/protocols/frameio-c2c.md §4.1) and pins the V1
// serializer. The result is a credential: never log it.
func socketURL(base, access string) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "Authorization=Bearer%20" + url.QueryEscape(access) + "&vsn=1.0.0"
}

func (w wsDialer) dial(ctx context.Context, base, access string) (*websocket.Conn, error) {
	h := http.Header{}
	h.Set("x-client-version", w.version)
	c, resp, err := w.d.DialContext(ctx, socketURL(base, access), h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusForbidden {
			return nil, errSocketForbidden
		}
		if resp != nil {
			if d := rateLimitWait(resp.Header, w.clk.Now(), w.waits); d > 0 {
				return nil, retry.RetryAfter(fmt.Errorf("socket: HTTP %d on upgrade", resp.StatusCode), d)
			}
			return nil, fmt.Errorf("socket: HTTP %d on upgrade", resp.StatusCode)
		}
		return nil, fmt.Errorf("socket: %w", redactErr(err))
	}
	c.SetReadLimit(maxFrame)
	return c, nil
}
