// Package frameiotest is an in-process fake of Frame.io's Camera-to-Cloud
// device API, like net/http/httptest: the auth endpoints (device code,
// token, refresh, revoke), /v2/devices/me, /health, the Phoenix V1 device
// socket and the asset endpoints with fake presigned PUT URLs. Tests script
// it (pairing answers, pauses, dropped sockets, expired tokens, 409/429/5xx,
// failing parts) and read back what it received.
//
// Concurrency: every method is safe for concurrent use. Close (and Restart)
// wait for the goroutines the server started.
package frameiotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
)

// Options configures a Server. Zero values are Frame.io's figures.
type Options struct {
	// Listen is the address, default "127.0.0.1:0".
	Listen string
	Logger *slog.Logger
	// ClientID and ClientSecret the fake accepts (default "test-device" and
	// "test-secret").
	ClientID, ClientSecret string
	// IdleTimeout closes a socket that sent no heartbeat for this long (60 s).
	IdleTimeout time.Duration
	// AccessTTL is the access token lifetime (8 h).
	AccessTTL time.Duration
	// CodeTTL and Interval are the device-code expires_in and interval in
	// seconds (120 and 5).
	CodeTTL, Interval int
	// Now is the fake's clock for heartbeat accounting (default time.Now).
	// A test that drives the client's heartbeats by hand advances it, and
	// the fake closes a socket whose heartbeats are more than IdleTimeout
	// apart on that clock, so an hour of heartbeats runs in milliseconds.
	Now func() time.Time
	// AutoApprove, when > 0, approves a code after that many polls that
	// answered authorization_pending (for `edge-agent sim`). Tests use
	// SetPairScript instead.
	AutoApprove int
}

// Fault is a scripted answer for the next asset create.
type Fault struct {
	Status  int
	Message string      // detailed-shape "message", e.g. "Channel Paused"
	Header  http.Header // e.g. x-ratelimit-remaining: 0, x-ratelimit-window: 50
}

// Stats are the fake's counters.
type Stats struct {
	Upgrades        int // accepted socket upgrades
	Forbidden       int // upgrades refused with 403
	Joins           int // successful phx_join
	SwallowedJoins  int // phx_joins left unanswered (SwallowJoins)
	Heartbeats      int
	IdleCloses      int // sockets closed for lack of heartbeats
	MaxHeartbeatGap time.Duration
	Codes           int // device codes issued
	Polls           int // device-code token polls
	Refreshes       int // successful refresh grants
	Revokes         int
	Creates         int // asset create calls (any outcome)
	Conflicts       int // 409 Channel Paused answers
	PartPuts        int // completed part PUTs (including repeats)
	ClientVersions  []string
}

// Asset is one created asset as the fake saw it.
type Asset struct {
	ID        string
	Name      string
	Filetype  string
	Filesize  int64
	Offset    int64
	Channel   int
	Parts     int
	PutCounts []int // completed PUTs per part
	Complete  bool
	SHA256    string // of the assembled bytes, once complete
}

type asset struct {
	Asset
	sig   string
	parts map[int][]byte
}

type code struct {
	device, user string
	expires      time.Time
	polls        int
}

// Server is the fake.
type Server struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	ln      net.Listener
	addr    string
	srv     *http.Server
	serveWG sync.WaitGroup
	conns   map[*wsConn]struct{}
	connWG  sync.WaitGroup
	// handlerWG counts running HTTP handlers (sockets included).
	handlerWG sync.WaitGroup
	closed    bool
	// stopping refuses new sockets while stop runs (Restart, Close).
	stopping bool

	codes      map[string]*code
	pairScript []string
	access     map[string]time.Time // access token → expiry
	refresh    map[string]bool
	projectID  string
	deviceID   string // top-level id used in the topic
	paused     bool
	pausedAt   time.Time
	health     int

	createFaults []Fault
	partFails    int
	blockPart    int
	blocked      chan struct{} // closed to release a blocked part
	partStarted  chan int
	swallowHB    bool
	swallowJoins int     // joins of the device topic left to leave unanswered
	hostile      hostile // EchoCredentials

	assets map[string]*asset
	order  []string
	stats  Stats

	// redirect answers matching requests with a redirect (Redirect);
	// rewriteURLs changes the upload_urls of asset creates (SetUploadURLs).
	redirect    httpxtest.Redirect
	rewriteURLs func([]string) []string
}

// New starts the fake.
func New(opts Options) (*Server, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ClientID == "" {
		opts.ClientID = "test-device"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "test-secret"
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = 8 * time.Hour
	}
	if opts.CodeTTL <= 0 {
		opts.CodeTTL = 120
	}
	if opts.Interval <= 0 {
		opts.Interval = 5
	}
	s := &Server{opts: opts, log: opts.Logger, conns: map[*wsConn]struct{}{},
		codes: map[string]*code{}, access: map[string]time.Time{}, refresh: map[string]bool{},
		projectID: "proj-" + randHex(4), deviceID: "pd-" + randHex(4), health: 200,
		assets: map[string]*asset{}, partStarted: make(chan int, 16)}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("frameio fake: %w", err)
	}
	s.addr = ln.Addr().String()
	s.start(ln)
	return s, nil
}

func (s *Server) start(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/auth/device/code", s.hostileCode(s.handleCode))
	mux.HandleFunc("POST /v2/auth/token", s.handleToken)
	mux.HandleFunc("POST /v2/auth/revoke", s.handleRevoke)
	mux.HandleFunc("GET /v2/devices/me", s.echoBearer(s.handleMe))
	mux.HandleFunc("POST /v2/devices/assets", s.echoBearer(s.handleCreate))
	mux.HandleFunc("PUT /s3/{id}/{part}", s.handlePut)
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.HandleFunc("GET /devices/websocket", s.handleSocket)
	mux.HandleFunc("GET /{$}", s.handleStatus)
	// Every handler is counted, so stop can wait for them: http.Server.Close
	// does not wait for running handlers.
	front := s.redirect.Wrap(mux)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlerWG.Add(1)
		defer s.handlerWG.Done()
		front.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: counted, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.ln, s.srv, s.stopping = ln, srv, false
	s.mu.Unlock()
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		_ = srv.Serve(ln)
	}()
}

// URL is the API base, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.addr }

// SocketURL is the device socket endpoint.
func (s *Server) SocketURL() string { return "ws://" + s.addr + "/devices/websocket" }

// ClientID and ClientSecret are the credentials the fake accepts.
func (s *Server) ClientID() string     { return s.opts.ClientID }
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// DeviceID is the project device id the socket topic must name.
func (s *Server) DeviceID() string { return s.deviceID }

// stop shuts the HTTP server and every socket, and waits for them.
func (s *Server) stop() {
	s.mu.Lock()
	s.stopping = true
	srv := s.srv
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	if s.blocked != nil {
		close(s.blocked)
		s.blocked, s.blockPart = nil, 0
	}
	s.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = srv.Shutdown(ctx)
		cancel()
		_ = srv.Close()
	}
	for _, c := range conns {
		c.conn.Close()
	}
	s.serveWG.Wait()
	s.connWG.Wait()
	s.handlerWG.Wait()
}

// Restart drops every connection and listens again on the same address,
// keeping all state (tokens, assets, received parts), like a server restart
// behind a stable name.
func (s *Server) Restart() error {
	s.stop()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("frameio fake restart: %w", err)
	}
	s.start(ln)
	s.log.Info("frameio fake restarted")
	return nil
}

// Close stops the fake and waits for its goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	return nil
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ClientVersions = append([]string(nil), s.stats.ClientVersions...)
	return st
}

// Assets returns the created assets in creation order.
func (s *Server) Assets() []Asset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Asset, 0, len(s.order))
	for _, id := range s.order {
		a := s.assets[id].Asset
		a.PutCounts = append([]int(nil), a.PutCounts...)
		out = append(out, a)
	}
	return out
}

// SetPairScript sets the answers of the next token polls in order
// ("authorization_pending", "slow_down", "expired_token", "invalid_grant",
// "invalid_client"); once it is used up the next poll succeeds.
func (s *Server) SetPairScript(answers ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pairScript = append([]string(nil), answers...)
}

// SetPaused changes the device status and pushes status_updated to every
// joined socket.
func (s *Server) SetPaused(p bool) {
	s.mu.Lock()
	s.paused = p
	if p {
		s.pausedAt = time.Now()
	}
	s.mu.Unlock()
	payload := `"resumed"`
	if p {
		payload = `"paused"`
	}
	s.pushAll("status_updated", payload)
	s.log.Info("frameio fake: channel status", "paused", p)
}

// DropSockets closes every socket abruptly (no close frame).
func (s *Server) DropSockets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.conn.Close()
	}
}

// CloseChannels sends phx_close on every joined channel.
func (s *Server) CloseChannels() { s.pushAll("phx_close", `{}`) }

// CrashChannels sends phx_error on every joined channel; the channel is no
// longer joined until the client rejoins.
func (s *Server) CrashChannels() {
	s.mu.Lock()
	for c := range s.conns {
		c.mu.Lock()
		c.crashed = c.topic
		c.mu.Unlock()
	}
	s.mu.Unlock()
	s.pushAll("phx_error", `{"reason":"channel_crash"}`)
}

// ExpireAccessTokens makes every issued access token invalid: the socket
// upgrade answers 403 and REST calls 401 until the client refreshes.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.access {
		s.access[k] = time.Time{}
	}
}

// RevokeRefreshTokens makes every refresh token invalid (invalid_grant).
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh = map[string]bool{}
}

// FailCreates scripts the answers of the next asset creates.
func (s *Server) FailCreates(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.createFaults = append(s.createFaults, f...)
}

// Redirect makes every request whose path starts with prefix ("/v2/auth/",
// "/v2/devices/me", "/v2/devices/assets", "/s3/") be answered with status
// (301, 302, 303, 307 or 308) and Location target + its path and query, like
// a front redirecting to another host, until called with status 0.
func (s *Server) Redirect(prefix string, status int, target string) {
	s.redirect.Set(httpxtest.Rule{Prefix: prefix, Status: status, Target: target})
}

// Redirected counts the requests answered with a redirect.
func (s *Server) Redirected() int { return s.redirect.Count() }

// SetUploadURLs makes asset creates answer f(the real upload_urls) (more
// URLs than parts, http URLs, padded ones); nil restores the real ones.
func (s *Server) SetUploadURLs(f func(urls []string) []string) {
	s.mu.Lock()
	s.rewriteURLs = f
	s.mu.Unlock()
}

// FailParts makes the next n part PUTs answer 500.
func (s *Server) FailParts(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partFails = n
}

// BlockPart makes PUTs of part number n (1-based) hang until Restart or
// Close; PartStarted reports each blocked PUT's part number.
func (s *Server) BlockPart(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blockPart = n
	if s.blocked == nil {
		s.blocked = make(chan struct{})
	}
}

// PartStarted receives the part number of each PUT that BlockPart holds.
func (s *Server) PartStarted() <-chan int { return s.partStarted }

// SwallowHeartbeats stops (or resumes) replying to heartbeats.
func (s *Server) SwallowHeartbeats(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.swallowHB = on
}

// SwallowJoins leaves the next n joins of the device's topic unanswered,
// like a server whose channel process hangs.
func (s *Server) SwallowJoins(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.swallowJoins = n
}

// SetHealth sets the /health status code (200 by default).
func (s *Server) SetHealth(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health = status
}

// IssueTokens returns a valid token pair, as if the device had paired.
func (s *Server) IssueTokens() (access, refresh string, expiresIn int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked()
}

func (s *Server) issueLocked() (string, string, int) {
	a, r := "at-"+randHex(16), "rt-"+randHex(16)
	s.access[a] = time.Now().Add(s.opts.AccessTTL)
	s.refresh[r] = true
	return a, r, int(s.opts.AccessTTL / time.Second)
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.access[tok]
	return ok && time.Now().Before(exp)
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || h[:len(p)] != p {
		return "", false
	}
	return h[len(p):], true
}

func (s *Server) noteVersion(r *http.Request) {
	v := r.Header.Get("x-client-version")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.stats.ClientVersions {
		if x == v {
			return
		}
	}
	if len(s.stats.ClientVersions) < 16 {
		s.stats.ClientVersions = append(s.stats.ClientVersions, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// detailed writes Frame.io's detailed error shape.
func detailed(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "message": msg,
		"errors": []map[string]any{{"code": status, "status": status, "title": msg, "detail": msg}}})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.health
	s.mu.Unlock()
	writeJSON(w, st, map[string]string{"status": http.StatusText(st)})
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	s.noteVersion(r)
	if !s.authorized(r) {
		detailed(w, http.StatusUnauthorized, "Not Authorized")
		return
	}
	s.mu.Lock()
	status := "online"
	if s.paused {
		status = "paused"
	}
	me := map[string]any{"_type": "project_device", "id": s.deviceID, "device_id": "dev-" + s.opts.ClientID,
		"name": s.opts.ClientID, "status": status, "project_id": s.projectID,
		"project": map[string]any{"id": s.projectID, "name": "Fake Project"},
		"authorization": map[string]any{"expires_at": nil, "project_device_id": s.deviceID,
			"creator": map[string]any{"name": "Fake User"}}}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, me)
}

// handleStatus is a small JSON status page for `edge-agent sim`.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	type row struct {
		Name     string `json:"name"`
		Size     int64  `json:"size"`
		Parts    int    `json:"parts"`
		Complete bool   `json:"complete"`
		SHA256   string `json:"sha256,omitempty"`
	}
	assets := s.Assets()
	rows := make([]row, 0, len(assets))
	for _, a := range assets {
		rows = append(rows, row{a.Name, a.Filesize, a.Parts, a.Complete, a.SHA256})
	}
	s.mu.Lock()
	paused, sockets := s.paused, len(s.conns)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"service": "frameio fake", "paused": paused,
		"sockets": sockets, "stats": s.Stats(), "assets": rows})
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
