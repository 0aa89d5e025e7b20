package frameiotest

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn is one device socket. Writes are serialised by mu.
type wsConn struct {
	conn    *websocket.Conn
	mu      sync.Mutex
	topic   string // joined topic, "" when none
	crashed string // topic errored by CrashChannels, until rejoined
}

// v1 is a Phoenix V1 frame as the fake reads it; the fake keeps its own
// decoder so it checks the client independently of the client's codec.
type v1 struct {
	Topic   string          `json:"topic"`
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
	Ref     *string         `json:"ref"`
}

func (c *wsConn) send(topic, event, payload string, ref *string) error {
	b, err := json.Marshal(v1{Topic: topic, Event: event, Payload: json.RawMessage(payload), Ref: ref})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// handleSocket is the device socket: token in the query
// (docs/protocols/frameio-c2c.md §4.1), 403 when it is invalid or expired, V1
// frames, heartbeat replies, and a close after IdleTimeout without a
// heartbeat.
func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	s.noteVersion(r)
	tok, ok := bearer(r.URL.Query().Get("Authorization"))
	valid := false
	if ok {
		s.mu.Lock()
		exp, known := s.access[tok]
		valid = known && time.Now().Before(exp)
		s.mu.Unlock()
	}
	if !valid {
		s.mu.Lock()
		s.stats.Forbidden++
		s.mu.Unlock()
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if v := r.URL.Query().Get("vsn"); v != "" && v != "1.0.0" {
		http.Error(w, "only vsn 1.0.0", http.StatusBadRequest)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &wsConn{conn: conn}
	s.mu.Lock()
	if s.closed || s.stopping {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.stats.Upgrades++
	s.connWG.Add(1)
	s.mu.Unlock()
	s.log.Info("frameio fake: device socket connected")
	// The handler goroutine serves the socket; connWG lets Close wait for it
	// (hijacked connections are not tracked by http.Server).
	defer s.connWG.Done()
	s.serveSocket(c)
}

func (s *Server) serveSocket(c *wsConn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.conn.Close()
	}()
	lastHB := time.Now()  // real time: the socket's read deadline
	lastV := s.opts.Now() // the fake's clock: heartbeat gaps
	for {
		_ = c.conn.SetReadDeadline(lastHB.Add(s.opts.IdleTimeout))
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				s.idleClose()
			}
			return
		}
		var m v1
		if json.Unmarshal(b, &m) != nil || m.Topic == "" || m.Event == "" || m.Payload == nil {
			s.log.Warn("frameio fake: malformed frame")
			return // stock Phoenix drops a socket that sends garbage
		}
		switch {
		case m.Topic == "phoenix" && m.Event == "heartbeat":
			now, vnow := time.Now(), s.opts.Now()
			gap := vnow.Sub(lastV)
			s.mu.Lock()
			s.stats.Heartbeats++
			s.stats.MaxHeartbeatGap = max(s.stats.MaxHeartbeatGap, gap)
			swallow := s.swallowHB
			s.mu.Unlock()
			if gap > s.opts.IdleTimeout {
				s.idleClose()
				return
			}
			lastHB, lastV = now, vnow
			if !swallow {
				_ = c.send("phoenix", "phx_reply", `{"status":"ok","response":{}}`, m.Ref)
			}
		case m.Event == "phx_join":
			if m.Topic != "devices:"+s.deviceID {
				_ = c.send(m.Topic, "phx_reply", `{"status":"error","response":{"reason":"unmatched topic"}}`, m.Ref)
				continue
			}
			s.mu.Lock()
			swallow := s.swallowJoins > 0
			if swallow {
				s.swallowJoins--
				s.stats.SwallowedJoins++
			}
			s.mu.Unlock()
			if swallow {
				continue
			}
			// Phoenix answers the join before the channel pushes anything,
			// so the reply goes out before the channel counts as joined
			// (pushAll skips it until then) and before Joins counts it.
			_ = c.send(m.Topic, "phx_reply", `{"status":"ok","response":{}}`, m.Ref)
			c.mu.Lock()
			c.topic, c.crashed = m.Topic, ""
			c.mu.Unlock()
			s.mu.Lock()
			s.stats.Joins++
			s.mu.Unlock()
			s.log.Info("frameio fake: device joined", "topic", m.Topic)
		case m.Event == "phx_leave":
			c.mu.Lock()
			c.topic = ""
			c.mu.Unlock()
			_ = c.send(m.Topic, "phx_reply", `{"status":"ok","response":{}}`, m.Ref)
		default:
			_ = c.send(m.Topic, "phx_reply", `{"status":"error","response":{"reason":"unmatched topic"}}`, m.Ref)
		}
	}
}

func (s *Server) idleClose() {
	s.mu.Lock()
	s.stats.IdleCloses++
	s.mu.Unlock()
	s.log.Warn("frameio fake: no heartbeat in time; closing the socket", "after", s.opts.IdleTimeout)
}

// pushAll sends a server push (ref null) on every joined channel.
func (s *Server) pushAll(event, payload string) {
	s.mu.Lock()
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		topic := c.topic
		if event == "phx_error" || event == "phx_close" {
			c.topic = ""
		}
		c.mu.Unlock()
		if topic == "" || !strings.HasPrefix(topic, "devices:") {
			continue
		}
		_ = c.send(topic, event, payload, nil)
	}
}
