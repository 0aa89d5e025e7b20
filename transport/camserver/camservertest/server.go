// Package camservertest is an in-process fake of the REST Web Camera Server
// (wcWebCamServer), like net/http/httptest. It serves HTTP/2 only, over TLS
// (ALPN h2, a generated certificate for 127.0.0.1/localhost) or h2c with
// prior knowledge, and copies the real server's observable behaviour,
// quirks included (docs/protocols/camera-server.md; §9 lists what it copies):
//
//   - JSON endpoints are POST only (405 otherwise); a POST to an unknown
//     path, input.raw or output.raw is 404; PUT input.raw, GET output.raw;
//
//   - every JSON answer is HTTP 200 with result OK or BAD+code;
//
//   - a wrong Content-Length on a JSON request closes the whole connection
//     (the real server sends GOAWAY);
//
//   - sessions are bound to the remote IP, expire when idle, and are deleted
//     by the maintenance pass once over the per-session or per-minute limit;
//
//   - input.raw never answers; a bad frame, END_STREAM or an invalid session
//     resets the stream; stream data does not refresh the session;
//
//   - messages are pulled, with the sync bookmark and 32-item pages; records
//     are account-wide.
//
//   - receive windows (connection and stream, 65535 bytes) are refilled with
//     one WINDOW_UPDATE only when they reach zero (flowConn), so a stalled
//     handler stalls the client while pings are still answered.
//
// Not copied: refused streams are reset with INTERNAL_ERROR (the Go server's
// abort) rather than REFUSED_STREAM, and a wrong Content-Length closes the
// socket rather than sending GOAWAY first. Clients must not depend on either
// (stream ends are never classified, docs/protocols/camera-server.md §7.2).
//
// Concurrency: all methods are safe for concurrent use. Close stops every
// goroutine the server started and waits for them.
package camservertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/internal/selfsigned"
)

// Options configures a fake server. Zero values take the real server's
// defaults, except that the maintenance passes only run when asked (Maintain)
// unless MaintenanceEvery is set, so tests decide when sessions die.
type Options struct {
	// TLS serves HTTPS (HTTP/2 via ALPN); false serves h2c prior knowledge.
	TLS    bool
	Logger *slog.Logger
	// Users maps account name → password; nil means {"demo": "demo-pass"}.
	Users map[string]string
	// MaintenanceEvery runs Maintain periodically (the real server: 10 s for
	// dead sessions, 60 s for request limits); 0 means only on demand.
	MaintenanceEvery time.Duration
	// RemoteIP overrides the request's source IP (to test IP binding).
	RemoteIP func(r *http.Request) string
	// Now is the server clock; nil means time.Now.
	Now func() time.Time
	// ViewerMinGap is the least time between frames sent to an output.raw
	// viewer; 0 means the server's 400 ms.
	ViewerMinGap time.Duration
	// PoisonParserFail selects how a message stored with non-object params
	// (addMsgs with "params":"abc") breaks getMsgs. By default it is what
	// the running server does: getMsgs of every device answers
	// DATABASE_FAIL (code 3) until the server restarts (Restart), and the
	// message is not listed after that. With
	// PoisonParserFail it is what the server's source reads: the message's
	// recipients get JSON_PARSER_FAIL (code 4) until it expires.
	PoisonParserFail bool
}

// Server is the fake.
type Server struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	srv   *http.Server
	ln    net.Listener
	addr  string
	cert  tls.Certificate
	caPEM []byte

	wg     sync.WaitGroup
	stop   chan struct{}
	connMu sync.Mutex
	conns  map[net.Conn]struct{}

	mu        sync.Mutex
	sessions  map[string]*session
	sessSeq   uint64
	counter   int
	msgs      []*message
	bookmark  map[string]string    // device → sync stamp
	bookAt    map[string]time.Time // device → bookmark time
	records   []*Record
	nextRID   int64
	config    []*configKind
	streams   map[string]*stream // device → live input.raw
	stalled   map[string]bool
	stats     Stats
	frameHook func(device string, payload []byte)
	reqHook   func(path, device string, at time.Time)
	calls     map[string]int
	dbFailed  bool           // getMsgs answers DATABASE_FAIL until Restart
	failNext  map[string]int // path → HTTP status for the next requests (FailNext)
	failLeft  map[string]int // path → how many more

	// redirect answers matching requests with a redirect (Redirect);
	// failRetryAfter is the Retry-After of FailNext's answers.
	redirect       httpxtest.Redirect
	failRetryAfter string
}

// Stats counts what the fake saw.
type Stats struct {
	Requests        int // JSON requests
	Authorizations  int
	Frames          int // frames received on input.raw
	FrameBytes      int64
	StreamsOpened   int
	StreamsRefused  int
	LengthMismatch  int // connections dropped for a wrong Content-Length
	DeletedSessions int
	// PeakPerMinute is the most counted requests one session made between
	// two limit passes (Maintain), the window the real server checks its
	// per-minute limit on (docs/protocols/camera-server.md §5.1).
	PeakPerMinute int
}

// New starts a fake on listen ("127.0.0.1:0").
func New(listen string, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Users == nil {
		opts.Users = map[string]string{"demo": "demo-pass"}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, stop: make(chan struct{}),
		conns: map[net.Conn]struct{}{}, sessions: map[string]*session{}, bookmark: map[string]string{},
		bookAt: map[string]time.Time{}, config: defaultConfig(), streams: map[string]*stream{},
		stalled: map[string]bool{}, calls: map[string]int{}}
	if opts.TLS {
		cert, caPEM, err := selfsigned.Localhost("camservertest")
		if err != nil {
			return nil, fmt.Errorf("camservertest: certificate: %w", err)
		}
		s.cert, s.caPEM = cert, caPEM
	}
	if err := s.listen(listen); err != nil {
		return nil, err
	}
	if opts.MaintenanceEvery > 0 {
		s.wg.Add(1)
		go s.maintainLoop()
	}
	return s, nil
}

func (s *Server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("camservertest: listen: %w", err)
	}
	s.connMu.Lock()
	s.addr = ln.Addr().String()
	s.ln = ln
	s.connMu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// accept serves each connection with the Go HTTP/2 server (TLS with ALPN h2,
// or h2c prior knowledge) behind flowConn, which copies the real server's
// flow control.
func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	// Go's own buffers stand for the real server's 1 MiB reassembly buffer;
	// the window the client sees is flowConn's 65535, refilled at zero.
	h2 := &http2.Server{MaxConcurrentStreams: 100, MaxUploadBufferPerConnection: 4 << 20,
		MaxUploadBufferPerStream: 1 << 20, MaxReadFrameSize: 16384}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.connMu.Lock()
		s.conns[c] = struct{}{}
		s.connMu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.connMu.Lock()
				delete(s.conns, c)
				s.connMu.Unlock()
			}()
			var conn net.Conn = c
			if s.opts.TLS {
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{s.cert}, NextProtos: []string{"h2"}})
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
					return
				}
				_ = tc.SetDeadline(time.Time{})
				conn = tc
			}
			fc := newFlowConn(conn)
			ctx := context.WithValue(context.Background(), connKey{}, c)
			ctx = context.WithValue(ctx, flowKey{}, fc)
			h2.ServeConn(fc, &http2.ServeConnOpts{Context: ctx, Handler: s.redirect.Wrap(http.HandlerFunc(s.route))})
		}()
	}
}

type (
	connKey struct{}
	flowKey struct{}
)

// URL is the server's base URL.
func (s *Server) URL() string {
	if s.opts.TLS {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.addr }

// CAPEM is the PEM of the certificate to trust (TLS only).
func (s *Server) CAPEM() []byte { return s.caPEM }

// Restart drops every connection and stream and listens again on the same
// address; the database (sessions, messages, records) survives, as the real
// server's SQLite file does, and a DATABASE_FAIL state (see
// Options.PoisonParserFail) ends.
func (s *Server) Restart() error {
	s.shutdown()
	s.mu.Lock()
	s.dbFailed = false
	s.mu.Unlock()
	return s.listen(s.addr)
}

// FailNext answers the next n requests to path (e.g. "/authorize.json")
// with HTTP status and no body, as a proxy or a server being redeployed
// does; n <= 0 stops it.
func (s *Server) FailNext(path string, status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext == nil {
		s.failNext, s.failLeft = map[string]int{}, map[string]int{}
	}
	s.failNext[path], s.failLeft[path] = status, max(n, 0)
}

// SetFailRetryAfter makes FailNext's answers carry Retry-After v ("" none),
// e.g. "315360000", as a proxy in front of the server might.
func (s *Server) SetFailRetryAfter(v string) {
	s.mu.Lock()
	s.failRetryAfter = v
	s.mu.Unlock()
}

// Redirect makes every request whose path starts with prefix (e.g.
// "/authorize.json") be answered with status (301, 302, 303, 307 or 308)
// and Location target + its path and query, like a front redirecting to
// another host, until called with status 0.
func (s *Server) Redirect(prefix string, status int, target string) {
	s.redirect.Set(httpxtest.Rule{Prefix: prefix, Status: status, Target: target})
}

// Redirected counts the requests answered with a redirect.
func (s *Server) Redirected() int { return s.redirect.Count() }

// shutdown closes the listener and every connection.
func (s *Server) shutdown() {
	s.connMu.Lock()
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.connMu.Unlock()
	s.closeStreams()
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.shutdown()
	s.wg.Wait()
	return nil
}

// dropConn ends the request's whole connection (the real server sends GOAWAY).
func (s *Server) dropConn(r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		_ = c.Close()
	}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Calls returns how many requests reached path (e.g. "/heartBit.json").
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// SetRequestHook, when set, is called with every counted request (a JSON
// request whose session id was accepted: what the limits count), its
// device and the server clock's time (Options.Now) when it arrived. Tests
// use it to see when a client polls, on a clock they control.
func (s *Server) SetRequestHook(h func(path, device string, at time.Time)) {
	s.mu.Lock()
	s.reqHook = h
	s.mu.Unlock()
}

// ResetStreams refuses every live input.raw (the clients see a stream reset).
func (s *Server) ResetStreams() { s.closeStreams() }

// Records returns a copy of the stored records.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, len(s.records))
	for i, r := range s.records {
		out[i] = *r
	}
	return out
}

// SetLimit sets an account limit (as setConfig does, clamped when used). For
// tests it also lets the range be widened: SetLimit(4, 6000, true).
func (s *Server) SetLimit(kind int, v float64, widen bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.config {
		if k.kind == kind {
			k.fv, k.hasFV = v, true
			if widen {
				k.miv, k.mav = min(k.miv, v), max(k.mav, v)
			}
		}
	}
}

// DeleteSessions deletes every session of device (as the limit pass does).
func (s *Server) DeleteSessions(device string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, ss := range s.sessions {
		if ss.device == device {
			delete(s.sessions, k)
			n++
		}
	}
	s.stats.DeletedSessions += n
	return n
}

// Stall makes input.raw of device stop reading and stops refilling its
// connection's window (the window runs dry while the connection still
// answers pings); false resumes.
func (s *Server) Stall(device string, on bool) {
	s.mu.Lock()
	s.stalled[device] = on
	st := s.streams[device]
	s.mu.Unlock()
	if st == nil {
		return
	}
	if st.fc != nil {
		st.fc.Hold(on)
	}
	if !on {
		st.wake()
	}
}

// Maintain runs the housekeeping passes now: dead sessions, request limits
// (deleting sessions over the per-minute or total limit and dropping the
// offending IP's connections), streams of deleted or superseded sessions and
// read messages.
func (s *Server) Maintain() {
	s.mu.Lock()
	now := s.now()
	dead := time.Duration(s.kind(2) * 1.008 * float64(time.Minute))
	perMin, total := int(s.kind(4)), int(s.kind(3))
	var offenders []string
	for k, ss := range s.sessions {
		s.stats.PeakPerMinute = max(s.stats.PeakPerMinute, ss.perMin)
		switch {
		case now.Sub(ss.last) > dead:
			s.log.Info("camserver fake: session expired", "device", ss.device)
		case ss.perMin > perMin || ss.total > total:
			s.log.Info("camserver fake: session over its request limit, deleted", "device", ss.device,
				"per_minute", ss.perMin, "total", ss.total)
			offenders = append(offenders, ss.ip)
		default:
			ss.perMin = 0
			continue
		}
		delete(s.sessions, k)
		s.stats.DeletedSessions++
	}
	for _, ss := range s.sessions {
		ss.perMin = 0
	}
	// Directed messages are collected once their target's bookmark is well past them.
	kept := s.msgs[:0]
	for _, m := range s.msgs {
		if m.target != "" {
			if at, ok := s.bookAt[m.target]; ok && at.Sub(m.at) > gcAfter {
				continue
			}
		}
		kept = append(kept, m)
	}
	s.msgs = kept
	var drop []*stream
	for dev, st := range s.streams {
		if ss, ok := s.sessions[st.shash]; !ok || s.newestLocked(dev) != ss {
			drop = append(drop, st)
		}
	}
	s.mu.Unlock()
	for _, st := range drop {
		st.refuse()
	}
	if len(offenders) > 0 {
		s.dropIP(offenders[0])
	}
}

// gcAfter is how far a bookmark must pass a directed message before GC (0.003 day).
const gcAfter = 259 * time.Second

func (s *Server) dropIP(ip string) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.conns {
		if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil && host == ip {
			_ = c.Close()
		}
	}
}

func (s *Server) maintainLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.MaintenanceEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Maintain()
		}
	}
}

func (s *Server) kind(k int) float64 {
	for _, c := range s.config {
		if c.kind == k {
			return c.value()
		}
	}
	return 0
}

func (s *Server) newestLocked(device string) *session {
	var best *session
	for _, ss := range s.sessions {
		if ss.device == device && (best == nil || ss.created > best.created) {
			best = ss
		}
	}
	return best
}

func (s *Server) remoteIP(r *http.Request) string {
	if s.opts.RemoteIP != nil {
		return s.opts.RemoteIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Message is one message the server holds, as sent.
type Message struct {
	From, Target, Msg string
	Params            string // the params object as JSON text
}

// Messages returns the messages the server holds, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.msgs))
	for _, m := range s.msgs {
		out = append(out, Message{From: m.from, Target: m.target, Msg: m.msg, Params: m.params})
	}
	return out
}
