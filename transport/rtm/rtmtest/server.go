// Package rtmtest is an in-process fake of the RTM stream-recording service,
// like net/http/httptest: it mints tokens at TokenPath (standing for our
// backend) and checks them (or a static Bearer token), answers the agent's
// offer with a pion peer, sends SETUP/ACTIVE, pings, receives the RTP and
// writes it to files (H.264 Annex-B and G.711 µ-law), and on recording_stop or
// session end PUTs the recording to the upload_url and reports
// recording_state. Fault switches let tests drop the socket, go silent,
// terminate with any cause and reject the SDP.
//
// Concurrency: all methods are safe for concurrent use. Every goroutine the
// server starts (per-connection handlers, pingers, RTP readers, uploads) is
// tracked and waited for by Close.
package rtmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/transport/rtm/internal/pionapi"
)

// Options configures a Server. Zero fields take defaults.
type Options struct {
	// Token the agent must present (Authorization: Bearer, or the ?token=
	// query parameter). Empty means a random one (see Server.Token).
	Token string
	// PingInterval is how often the server pings (default 1 s). A client
	// that has not answered for 3.5 intervals (at least 1 s) is terminated
	// with CONN_TIMEOUT.
	PingInterval time.Duration
	// Dir holds recordings and PUT uploads to /upload/; empty means a
	// temporary directory removed by Close.
	Dir    string
	Logger *slog.Logger
	// LogEvery is how often a session logs what it receives (default 5 s).
	LogEvery time.Duration

	// DeviceKey is what the token endpoint (TokenPath) accepts; empty means
	// a random one (see Server.DeviceKey).
	DeviceKey string
	// TokenTTL is the lifetime of minted tokens (default 24 h, the
	// service's token_ttl_s default).
	TokenTTL time.Duration
	// TokenSecret signs minted tokens. A restarted fake given the same
	// secret accepts the tokens its predecessor minted, like the service;
	// empty means a random one.
	TokenSecret []byte
}

// Server is the fake service.
type Server struct {
	opts   Options
	log    *slog.Logger
	ln     net.Listener
	srv    *http.Server
	api    *webrtc.API
	dir    string
	ownDir bool
	up     websocket.Upgrader
	client *http.Client

	minted      atomic.Int64
	rejected    atomic.Int64
	expiredUpTo atomic.Int64 // tokens issued at or before this (unix ns) are expired (ExpireTokens)

	silent atomic.Bool
	// Hostile switches: redirect answers matching requests with a redirect
	// (Redirect), wsEndpoint replaces the ws_endpoint of session creates
	// (SetWSEndpoint), failCreate answers creates with a status and
	// Retry-After (FailSessions).
	redirect   httpxtest.Redirect
	wsEndpoint atomic.Pointer[string]
	failCreate atomic.Pointer[failure]
	failToken  atomic.Pointer[failure] // FailTokens
	rejectSDP  atomic.Bool
	uploadSeq  atomic.Int64
	sessionSeq atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu            sync.Mutex
	staticToken   string   // Options.Token until ExpireTokens
	expiredStatic string   // the static token ExpireTokens replaced
	issued        []string // the last maxIssuedKept minted tokens
	closed        bool
	sessions      []*fakeSession
	uploads       []Upload
}

// Upload is one PUT the server received at /upload/.
type Upload struct {
	Path        string
	ContentType string
	Size        int64
	File        string
}

// New starts the fake on listen ("127.0.0.1:0" in tests).
func New(listen string, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = time.Second
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 5 * time.Second
	}
	if opts.Token == "" {
		opts.Token = randomHex(16)
	}
	if opts.DeviceKey == "" {
		opts.DeviceKey = randomHex(16)
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 24 * time.Hour
	}
	if len(opts.TokenSecret) == 0 {
		opts.TokenSecret = randomKey()
	}
	s := &Server{opts: opts, log: opts.Logger.With("sim", "rtm"), dir: opts.Dir,
		client: &http.Client{Timeout: 30 * time.Second}, staticToken: opts.Token}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "rtm-fake-")
		if err != nil {
			return nil, fmt.Errorf("rtm fake: %w", err)
		}
		s.dir, s.ownDir = d, true
	}
	// The link's interceptors, the H.264 formats a browser accepts, and
	// loopback candidates (the fake always runs on this host).
	api, err := pionapi.New(pionapi.Config{H264: pionapi.BrowserH264, Loopback: true})
	if err != nil {
		return nil, fmt.Errorf("rtm fake: %w", err)
	}
	s.api = api
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("rtm fake: listen: %w", err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/io", s.serveWS)
	mux.HandleFunc("POST /api/v2/session", s.serveCreate)
	mux.HandleFunc("POST "+TokenPath, s.serveToken)
	mux.HandleFunc("PUT /upload/", s.serveUpload)
	mux.HandleFunc("GET /status", s.serveStatus)
	s.srv = &http.Server{Handler: s.redirect.Wrap(mux), ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Token is the static Bearer token the server accepts (besides the tokens
// minted at TokenPath).
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.staticToken
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// WSURL is the RTM WebSocket endpoint.
func (s *Server) WSURL() string { return "ws://" + s.Addr() + "/api/v2/io" }

// APIURL is the REST base (POST /api/v2/session).
func (s *Server) APIURL() string { return "http://" + s.Addr() }

// UploadURL is a PUT target on the fake itself.
func (s *Server) UploadURL(name string) string { return "http://" + s.Addr() + "/upload/" + name }

// Dir is where recordings and uploads are kept.
func (s *Server) Dir() string { return s.dir }

// SetSilent stops (or resumes) every message from the server, pings
// included, without closing the socket: the agent must notice the silence.
func (s *Server) SetSilent(on bool) { s.silent.Store(on) }

// SetRejectSDP makes later session_start messages end with TERMINATED
// SDP_ERROR.
func (s *Server) SetRejectSDP(on bool) { s.rejectSDP.Store(on) }

// DropSockets closes every open WebSocket without a close frame.
func (s *Server) DropSockets() {
	for _, fs := range s.live() {
		fs.conn.UnderlyingConn().Close()
	}
}

// SendRaw writes frame as is to every live session (to test how the agent
// copes with malformed messages).
func (s *Server) SendRaw(frame []byte) {
	for _, fs := range s.live() {
		fs.writeRaw(frame)
	}
}

// Renegotiate sends a new offer (sdp_update) to every live session, as a
// service that renegotiates would; the agent must answer it.
func (s *Server) Renegotiate() {
	for _, fs := range s.live() {
		fs.renegotiate()
	}
}

// Terminate sends session_state TERMINATED with cause to every live session
// and closes it.
func (s *Server) Terminate(cause string) {
	for _, fs := range s.live() {
		fs.terminate(cause)
	}
}

func (s *Server) live() []*fakeSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*fakeSession
	for _, fs := range s.sessions {
		if !fs.isEnded() {
			out = append(out, fs)
		}
	}
	return out
}

// Sessions returns a snapshot of every session so far, oldest first.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	list := append([]*fakeSession(nil), s.sessions...)
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(list))
	for _, fs := range list {
		out = append(out, fs.info())
	}
	return out
}

// Uploads lists the PUTs received at /upload/.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Upload(nil), s.uploads...)
}

// Close stops the server, ends every session and waits for every goroutine.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	list := append([]*fakeSession(nil), s.sessions...)
	s.mu.Unlock()
	s.cancel()
	err := s.srv.Close()
	for _, fs := range list {
		fs.conn.Close()
	}
	s.wg.Wait()
	if s.ownDir {
		os.RemoveAll(s.dir)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// authorized checks the Bearer header, else the ?token= query parameter,
// and answers 401 (counted, the reason logged) when neither is accepted.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok = r.URL.Query().Get("token")
	}
	why := s.checkToken(tok)
	if why == "" {
		return true
	}
	s.rejected.Add(1)
	s.log.Info("rtm fake: 401", "path", r.URL.Path, "why", why)
	http.Error(w, "unauthorized: "+why, http.StatusUnauthorized)
	return false
}

// readClientID reads the {"client_id"} body of the REST calls, answering 400
// when it is missing.
func readClientID(w http.ResponseWriter, r *http.Request) (string, bool) {
	var body struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body); err != nil || body.ClientID == "" {
		http.Error(w, "client_id required", http.StatusBadRequest)
		return "", false
	}
	return body.ClientID, true
}

// failure is a scripted answer of FailSessions.
type failure struct {
	status     int
	retryAfter string
}

// Redirect makes every request whose path starts with prefix (TokenPath,
// "/api/v2/session") be answered with status (301, 302, 303, 307 or 308)
// and Location target + its path, like a front redirecting to another host,
// until called with status 0.
func (s *Server) Redirect(prefix string, status int, target string) {
	s.redirect.Set(httpxtest.Rule{Prefix: prefix, Status: status, Target: target})
}

// Redirected counts the requests answered with a redirect.
func (s *Server) Redirected() int { return s.redirect.Count() }

// SetWSEndpoint makes session creates hand out u as ws_endpoint ("" restores
// the fake's own), as a compromised or misconfigured service would.
func (s *Server) SetWSEndpoint(u string) {
	if u == "" {
		s.wsEndpoint.Store(nil)
		return
	}
	s.wsEndpoint.Store(&u)
}

// FailSessions makes session creates answer status with Retry-After
// retryAfter ("" none), e.g. 503 and "315360000", until called with 0.
func (s *Server) FailSessions(status int, retryAfter string) {
	if status == 0 {
		s.failCreate.Store(nil)
		return
	}
	s.failCreate.Store(&failure{status: status, retryAfter: retryAfter})
}

// FailTokens makes the token endpoint answer status with Retry-After
// retryAfter ("" none) until called with 0, as our backend (or a proxy in
// front of it) might.
func (s *Server) FailTokens(status int, retryAfter string) {
	if status == 0 {
		s.failToken.Store(nil)
		return
	}
	s.failToken.Store(&failure{status: status, retryAfter: retryAfter})
}

// answer writes f (status and Retry-After) when f is set and reports
// whether it did.
func (f *failure) answer(w http.ResponseWriter, what string) bool {
	if f == nil {
		return false
	}
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	http.Error(w, what+" failed on purpose", f.status)
	return true
}

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request) {
	if s.failCreate.Load().answer(w, "session create") {
		return
	}
	if !s.authorized(w, r) {
		return
	}
	if _, ok := readClientID(w, r); !ok {
		return
	}
	id := fmt.Sprintf("sess-%d", s.sessionSeq.Add(1))
	ws := s.WSURL()
	if p := s.wsEndpoint.Load(); p != nil {
		ws = *p
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"session_id":      id,
		"ws_endpoint":     ws,
		"ice_credentials": map[string]any{"iceServers": []any{}},
	})
}

func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	name := strings.ReplaceAll(strings.TrimPrefix(r.URL.Path, "/upload/"), "/", "_")
	if name == "" {
		name = "recording"
	}
	if t := r.URL.Query().Get("track"); t != "" {
		name += "." + t
	}
	n := s.uploadSeq.Add(1)
	if err := os.MkdirAll(filepath.Join(s.dir, "uploads"), 0o700); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	path := filepath.Join(s.dir, "uploads", fmt.Sprintf("%03d-%s", n, name))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	size, err := io.Copy(f, io.LimitReader(r.Body, 1<<30))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.uploads = append(s.uploads, Upload{Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Size: size, File: path})
	s.mu.Unlock()
	s.log.Info("rtm fake: recording uploaded", "file", path, "bytes", size)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	sess := s.Sessions()
	sort.SliceStable(sess, func(i, j int) bool { return sess[i].Started.Before(sess[j].Started) })
	_ = json.NewEncoder(w).Encode(map[string]any{"sessions": sess, "uploads": s.Uploads()})
}
