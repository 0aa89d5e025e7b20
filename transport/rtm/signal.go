package rtm

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/httpx"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport"
)

// signal is one RTM WebSocket. It owns a reader and a writer goroutine:
// the reader answers ping at once through the writer's priority queue (a pong
// never waits behind candidates) and hands every other message to In; the
// writer sends queued frames in order. Both stop when the socket fails or
// close is called, and close waits for them.
type signal struct {
	conn  *websocket.Conn
	stats *transport.Stats
	clock clock.Clock

	clientID  string
	sessionID atomic.Pointer[string]

	prio chan Message // pongs; bounded, drops counted
	out  chan Message // everything else; bounded, full means a stuck socket
	in   chan Message // to the session loop

	done    chan struct{} // closed when the socket is finished
	errOnce sync.Once
	err     error
	wg      sync.WaitGroup

	// writeErr is the failed write that ends the socket once the reader has
	// delivered what had arrived (writeFailed); lastRead bounds that wait.
	writeErr atomic.Pointer[error]
	lastRead atomic.Int64 // unix nanoseconds; 0 while no write failed

	pingsSeen    atomic.Int64
	pongsDropped atomic.Int64
	lastPing     time.Time // reader-owned
	readDeadline time.Duration
	intervals    [8]time.Duration // last ping intervals (reader-owned)
	nInterval    int
	onFirstPing  func(raw []byte)
}

const (
	prioQueue = 8
	outQueue  = 256
	inQueue   = 64
)

// minReadDeadline floors the silence deadline so scheduling hiccups on a
// loaded board are not taken for a dead link.
const minReadDeadline = 500 * time.Millisecond

// errDead is the cause when the service stayed silent past the read deadline.
var errDead = errors.New("signalling silent: link dead")

// signalOptions are what a socket needs besides its URL and TLS settings.
type signalOptions struct {
	stats     *transport.Stats
	clock     clock.Clock      // times the pings (the deadlines on the socket are wall time)
	firstPing time.Duration    // the silence allowed before the first ping
	waits     *retry.PeerWaits // caps a Retry-After on a refused upgrade
}

// dialSignal opens the WebSocket with the Bearer token. A 401/403 is
// errTokenRejected (Dial renews the token); a 429/503 with Retry-After asks
// the supervisor to wait (capped by o.waits). The dialer follows no
// redirect: any answer but 101 is an error.
func dialSignal(ctx context.Context, cfg *Config, wsURL string, tlsConf *tls.Config, o signalOptions) (*signal, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("rtm dial: bad url: %w", err))
	}
	if cfg.WSTokenQueryParam != "" {
		q := u.Query()
		q.Set(cfg.WSTokenQueryParam, cfg.Token)
		u.RawQuery = q.Encode()
	}
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 15 * time.Second,
		TLSClientConfig:  tlsConf,
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+cfg.Token)
	conn, resp, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		// Never include u: it may carry the token as a query parameter.
		if resp != nil {
			resp.Body.Close()
			return nil, classifyHTTP("rtm dial", resp, err, o.waits, o.clock.Now())
		}
		return nil, fmt.Errorf("rtm dial %s: %w", u.Host, redactErr(err, cfg.Token))
	}
	conn.SetReadLimit(MaxMessageSize)
	s := &signal{
		conn: conn, stats: o.stats, clock: o.clock, clientID: cfg.ClientID,
		prio: make(chan Message, prioQueue), out: make(chan Message, outQueue), in: make(chan Message, inQueue),
		done: make(chan struct{}), readDeadline: o.firstPing,
	}
	empty := ""
	s.sessionID.Store(&empty)
	return s, nil
}

// start runs the reader and writer; onFirstPing (may be nil) sees the first
// ping's raw frame so its shape gets logged once.
func (s *signal) start(onFirstPing func(raw []byte)) {
	s.onFirstPing = onFirstPing
	s.wg.Add(2)
	go s.readLoop()
	go s.writeLoop()
}

// lastWord is how long the reader may still deliver what the peer sent
// after a write failed.
const lastWord = time.Second

// writeFailed ends the socket after a failed write without cutting the
// reader short: a peer that ends a session sends why (session_terminated)
// and closes, and a write racing the close fails on the reset while that
// frame may still wait, unread, in the socket. The reader delivers what
// arrived, for lastWord at most, and then ends with err.
func (s *signal) writeFailed(err error) {
	s.writeErr.Store(&err)
	last := time.Now().Add(lastWord)
	s.lastRead.Store(last.UnixNano())
	_ = s.conn.SetReadDeadline(last) // a read blocked now ends by then
}

func (s *signal) fail(err error) {
	s.errOnce.Do(func() {
		s.err = err
		close(s.done)
		s.conn.Close() // unblocks the reader
	})
}

// Err is why the socket ended (valid after Done is closed).
func (s *signal) Err() error {
	<-s.done
	return s.err
}

// Done is closed when the socket has failed or was closed.
func (s *signal) Done() <-chan struct{} { return s.done }

// In delivers the service's messages (ping excluded).
func (s *signal) In() <-chan Message { return s.in }

func (s *signal) setSessionID(id string) { s.sessionID.Store(&id) }

// send queues a message. It fails when the socket is gone or the queue is
// full (a socket that cannot drain 256 signalling frames is stuck: the
// session ends rather than memory growing).
func (s *signal) send(typ string, data any) error {
	m, err := NewMessage(typ, s.clientID, *s.sessionID.Load(), data)
	if err != nil {
		return err
	}
	select {
	case <-s.done:
		return fmt.Errorf("rtm send %s: %w", typ, s.err)
	default:
	}
	select {
	case s.out <- m:
		return nil
	default:
		err := fmt.Errorf("rtm send %s: queue full (%d): socket stuck", typ, outQueue)
		s.fail(err)
		return err
	}
}

// close stops both goroutines and waits for them. A clean close frame is
// attempted first so the service sees an orderly end.
func (s *signal) close() {
	// Socket deadlines are wall time, not the injected clock.
	_ = s.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	s.fail(errors.New("rtm signalling closed"))
	s.wg.Wait()
}

func (s *signal) readLoop() {
	defer s.wg.Done()
	for {
		// A socket deadline is wall time, not the injected clock.
		deadline := time.Now().Add(s.readDeadline)
		if last := s.lastRead.Load(); last != 0 {
			deadline = time.Unix(0, min(last, deadline.UnixNano()))
		}
		_ = s.conn.SetReadDeadline(deadline)
		_, b, err := s.conn.ReadMessage()
		if err != nil {
			var ne interface{ Timeout() bool }
			if werr := s.writeErr.Load(); werr != nil {
				err = *werr // what ended the socket; the read only waited for the peer's last word
			} else if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("rtm read: no message for %v: %w", s.readDeadline, errDead)
			} else {
				err = fmt.Errorf("rtm read: %w", err)
			}
			s.fail(err)
			return
		}
		s.stats.MsgsIn.Add(1)
		s.stats.BytesIn.Add(int64(len(b)))
		m, err := DecodeMessage(b)
		if err != nil {
			s.fail(err)
			return
		}
		if m.Type == TypePing {
			s.onPing(m, b)
			continue
		}
		select {
		case s.in <- m:
		case <-s.done:
			return
		}
	}
}

// onPing answers at once with the ping's data and adapts the silence
// deadline to 3× the observed interval (docs/protocols/webrtc-rtm.md §3.3).
func (s *signal) onPing(m Message, raw []byte) {
	now := s.clock.Now()
	n := s.pingsSeen.Add(1)
	if n == 1 && s.onFirstPing != nil {
		s.onFirstPing(raw)
	}
	if !s.lastPing.IsZero() {
		// 3× the longest of the last few intervals: one pair of pings that
		// arrived bunched up (a stalled writer on either side) must not
		// shrink the deadline below the real interval.
		s.intervals[s.nInterval%len(s.intervals)] = now.Sub(s.lastPing)
		s.nInterval++
		longest := time.Duration(0)
		for _, iv := range s.intervals {
			longest = max(longest, iv)
		}
		s.readDeadline = max(3*longest, minReadDeadline)
	}
	s.lastPing = now
	data := m.Data
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage("{}")
	}
	pong := Message{Type: TypePong, ClientID: s.clientID, SessionID: *s.sessionID.Load(), Data: data}
	select {
	case s.prio <- pong:
	default:
		s.pongsDropped.Add(1)
	}
}

func (s *signal) writeLoop() {
	defer s.wg.Done()
	write := func(m Message) bool {
		b, err := json.Marshal(m)
		if err != nil {
			s.fail(fmt.Errorf("rtm write %s: %w", m.Type, err))
			return false
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second)) // wall time, as the socket needs
		if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
			s.writeFailed(fmt.Errorf("rtm write %s: %w", m.Type, err))
			return false
		}
		s.stats.MsgsOut.Add(1)
		s.stats.BytesOut.Add(int64(len(b)))
		return true
	}
	for {
		// Pongs first, always.
		select {
		case m := <-s.prio:
			if !write(m) {
				return
			}
			continue
		default:
		}
		select {
		case <-s.done:
			return
		case m := <-s.prio:
			if !write(m) {
				return
			}
		case m := <-s.out:
			if !write(m) {
				return
			}
		}
	}
}

// classifyHTTP maps a refused upgrade or REST call to a retry decision;
// waits caps a Retry-After (nil: capped, not logged), an HTTP date in which
// counts from now.
func classifyHTTP(op string, resp *http.Response, err error, waits *retry.PeerWaits, now time.Time) error {
	base := fmt.Errorf("%s: HTTP %d", op, resp.StatusCode)
	if err != nil && !errors.Is(err, websocket.ErrBadHandshake) {
		base = fmt.Errorf("%s: HTTP %d: %w", op, resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w (%w)", base, errTokenRejected)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if d, ok := waits.Header(resp.Header, now); ok {
			return retry.RetryAfter(base, d)
		}
	}
	return base
}

// redactErr removes the token from an error's text (a dial error may echo
// the URL).
func redactErr(err error, token string) error {
	if token == "" || err == nil {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, token) {
		return err
	}
	return errors.New(strings.ReplaceAll(msg, token, "REDACTED"))
}

// tlsConfig builds the client TLS config with the policy every link shares
// (internal/httpx): verified unless insecure_skip_verify, with ca_file
// added to the system roots. It is read at every Dial, so a replaced
// certificate needs no restart.
func tlsConfig(cfg *Config) (*tls.Config, error) {
	tc, err := httpx.TLSConfig(httpx.TLS{CAFile: cfg.CAFile, InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("rtm %w", err))
	}
	return tc, nil
}
