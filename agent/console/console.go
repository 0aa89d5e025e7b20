// Package console is the board's own web console, served on the status
// server's address (status.listen) beside /status and /metrics: live views
// of the sensors (a camera preview, rolling plots of motion and serial
// axes, an audio level meter and waveform), one card per link with a short
// history of its states and errors, local captures to look at and
// download, and the effective config with its secrets masked. The page is
// server-rendered HTML with a little hand-written JavaScript, all embedded
// in the binary: no CDN, no build step. Everything the page does goes
// through the JSON API under /api/ (docs/API.md), so a script with curl can
// do the same.
//
// A live view subscribes to its sensor through the hub like a link does:
// it shares the sensor with the links (never takes it away from one), and
// it costs CPU only while a browser is watching, because the subscription
// lives exactly as long as the request that streams it. Every queue the
// console holds is bounded: a browser that reads slowly loses samples in
// its subscription's queue (counted, like any subscriber's) and never grows
// the agent's memory.
//
// Access (access.go): the status server's Host check stands in front of
// every request. On a loopback listener the views and actions are open to
// the board's own users; beyond loopback every action needs the console
// token (status.token_file), and the views too unless status.open_readonly
// says otherwise. Every state-changing request carries a CSRF token, and
// every answer a strict Content-Security-Policy.
//
// Concurrency: a Console is safe for concurrent requests. Run owns the
// console's background work (the link history's poller, running captures)
// and the end of every live stream: when its context ends it stops them
// and waits for them. Requests that arrive before Run or after it returned
// are answered, but live streams and captures are refused then.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/sensors"
)

//go:embed web
var webFS embed.FS

// Limits of what the console holds. They bound its memory whatever the
// browsers do.
const (
	// MaxViewers bounds the live streams served at once (camera previews
	// and signal feeds, over every browser); one more is refused with 503.
	MaxViewers = 8
	// HistoryLen is how many state changes and errors each link card keeps.
	HistoryLen = 50
	// PollPeriod is how often the link history looks at the links.
	PollPeriod = time.Second
	// MaxCaptureSeconds bounds one local capture.
	MaxCaptureSeconds = 60
	// KeepCaptures is how many finished captures are kept on disk; an
	// older one is deleted when a new one starts.
	KeepCaptures = 5
	// writeTimeout bounds each write to a browser: a browser that stops
	// reading is disconnected instead of holding its stream forever.
	writeTimeout = 10 * time.Second
)

// Options are the console's dependencies. Hub, Snapshot and Config are
// required.
type Options struct {
	// Hub is the agent's sensor hub; live views and captures subscribe
	// through it like links do.
	Hub sensors.Hub
	// Snapshot is the agent's status document (the same /status serves).
	Snapshot func() status.Snapshot
	// Config returns the config in effect (a reload may replace it).
	Config func() *config.Config
	// Secrets masks every secret the agent holds in the config view.
	Secrets *redact.Secrets
	// Listen is the status listener's address: a loopback address keeps
	// actions open to the board's users, any other requires the token.
	Listen net.Addr
	// TokenFile holds the console token (TokenPath of the config); it is
	// created, with a new random token, when missing.
	TokenFile string
	// OpenReadonly leaves the views (not the actions) open without the
	// token beyond loopback (status.open_readonly).
	OpenReadonly bool
	// CaptureDir holds local captures; files the console left there
	// before are removed by New.
	CaptureDir string
	// Version is shown in the page's header.
	Version string
	Logger  *slog.Logger
	Clock   clock.Clock
	// PollPeriod overrides PollPeriod (tests).
	PollPeriod time.Duration
	// Uploads returns the links' spools for the uploads view (uploads.go);
	// FrameIO the frameio links pairing in the browser can pair
	// (pairing.go). Nil: none.
	Uploads func() []UploadQueue
	FrameIO func() []FrameIOLink
}

// Console is the web console. Make it with New, serve Handler on the
// status server (status.Server.Mount) and run Run beside it.
type Console struct {
	opts   Options
	log    *slog.Logger
	clk    clock.Clock
	access *access
	hist   *history
	caps   *captures
	static http.Handler
	page   *template.Template
	mux    *http.ServeMux

	pairs   pairings      // a Frame.io pairing per link (pairing.go)
	viewers chan struct{} // a slot per live stream being served (MaxViewers)
	live    liveCounters

	mu      sync.Mutex
	running bool            // between Run's start and its end
	started chan struct{}   // closed when Run starts
	runCtx  context.Context // Run's; ends before Run waits for the streams
	wg      sync.WaitGroup  // live streams; Add only while running
}

// TokenPath is where the console token of cfg is kept: status.token_file,
// or console-token in the state directory.
func TokenPath(cfg *config.Config) string {
	if cfg.Status.TokenFile != "" {
		return cfg.Status.TokenFile
	}
	return filepath.Join(cfg.StateDir, "console-token")
}

// CaptureDir is where the console of cfg keeps local captures.
func CaptureDir(cfg *config.Config) string {
	return filepath.Join(cfg.StateDir, "console", "captures")
}

// New builds the console. A token that cannot be read or created is
// logged, and the actions it guards are refused (beyond loopback) until
// the agent restarts with one; it is not an error, the views still work.
func New(opts Options) (*Console, error) {
	if opts.Hub == nil || opts.Snapshot == nil || opts.Config == nil {
		return nil, errors.New("console: Hub, Snapshot and Config are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.PollPeriod <= 0 {
		opts.PollPeriod = PollPeriod
	}
	log := opts.Logger.With("component", "console")
	c := &Console{opts: opts, log: log, clk: opts.Clock, viewers: make(chan struct{}, MaxViewers),
		hist: newHistory(HistoryLen), started: make(chan struct{})}
	c.access = newAccess(opts.Listen, opts.TokenFile, opts.OpenReadonly, opts.Secrets, log)
	caps, err := newCaptures(opts.CaptureDir, opts.Hub, opts.Clock, log)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c.caps = caps
	sub, err := fs.Sub(webFS, "web/static")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c.static = http.StripPrefix("/console/", http.FileServerFS(sub))
	if c.page, err = parsePage(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c.routes()
	return c, nil
}

// routes registers every page and API path. Each handler is wrapped by
// access.guard with what it is: a view (read-only) or an action.
func (c *Console) routes() {
	m := http.NewServeMux()
	c.mux = m
	view := func(h http.HandlerFunc) http.Handler { return c.access.guard(h, false) }
	action := func(h http.HandlerFunc) http.Handler { return c.access.guard(h, true) }
	m.Handle("GET /{$}", c.access.page(http.HandlerFunc(c.handlePage)))
	m.Handle("GET /console/", c.access.headers(c.static))

	m.Handle("GET /api/session", c.access.headers(http.HandlerFunc(c.access.handleSession)))
	m.Handle("POST /api/login", c.access.headers(http.HandlerFunc(c.access.handleLogin)))
	m.Handle("POST /api/logout", action(c.access.handleLogout))

	m.Handle("GET /api/status", view(c.handleStatus))
	m.Handle("GET /api/links", view(c.handleLinks))
	m.Handle("GET /api/rules", view(c.handleRules))
	m.Handle("GET /api/reload", view(c.handleReload))
	m.Handle("GET /api/links/{name}", view(c.handleLink))
	m.Handle("GET /api/sensors", view(c.handleSensors))
	m.Handle("GET /api/sensors/{name}", view(c.handleSensor))
	m.Handle("GET /api/sensors/{name}/mjpeg", view(c.handleMJPEG))
	m.Handle("GET /api/sensors/{name}/still.jpg", view(c.handleStill))
	m.Handle("GET /api/sensors/{name}/live", view(c.handleLive))
	m.Handle("GET /api/config", view(c.handleConfig))

	m.Handle("GET /api/captures", view(c.handleCaptures))
	m.Handle("POST /api/captures", action(c.handleCaptureStart))
	m.Handle("GET /api/captures/{id}", view(c.handleCapture))
	m.Handle("GET /api/captures/{id}/file", view(c.handleCaptureFile))
	m.Handle("GET /api/captures/{id}/frames/{n}", view(c.handleCaptureFrame))
	m.Handle("POST /api/captures/{id}/cancel", action(c.handleCaptureCancel))
	m.Handle("DELETE /api/captures/{id}", action(c.handleCaptureDelete))

	c.uploadRoutes(m, view, action)
	c.pairingRoutes(m, view, action)

	// Anything else under /api/ is a JSON 404, not the page.
	m.Handle("/api/", c.access.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such API path: %s %s (see docs/API.md)", r.Method, r.URL.Path)
	})))
}

// Handler serves the page at /, its files under /console/ and the API under
// /api/. The status server mounts it behind its Host check.
func (c *Console) Handler() http.Handler { return c.mux }

// Prefixes are the paths besides / that Handler serves, for
// status.Server.Mount.
var Prefixes = []string{"/console/", "/api/"}

// Run keeps the link history and serves live streams and captures until
// ctx ends; then it ends every live stream and capture and waits for them.
// Call it once.
func (c *Console) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	if c.running || c.runCtx != nil {
		c.mu.Unlock()
		return errors.New("console: Run called twice")
	}
	c.running, c.runCtx = true, runCtx
	close(c.started)
	c.mu.Unlock()
	c.access.logMode()
	c.caps.open(runCtx)

	c.hist.observe(c.opts.Snapshot())
	tick := clock.NewTicker(ctx, c.clk, c.opts.PollPeriod)
	for ctx.Err() == nil {
		select {
		case <-tick.C:
			c.hist.observe(c.opts.Snapshot())
		case <-ctx.Done():
		}
	}
	tick.Stop()
	c.mu.Lock()
	c.running = false
	c.mu.Unlock()
	cancel() // ends every live stream
	c.caps.stopAll()
	c.wg.Wait()
	return nil
}

// startWait is how long a request waits for Run to start: the status
// server serves as soon as it listens, and Run is started beside it.
const startWait = 2 * time.Second

// begin registers one live stream that Run must wait for and returns
// Run's context, which ends when the stream must. A request that comes
// before Run started waits for it (startWait at most, or until ctx ends).
// It fails when Run is not running: nothing would end the stream.
func (c *Console) begin(ctx context.Context) (context.Context, bool) {
	t := time.NewTimer(startWait)
	defer t.Stop()
	select {
	case <-c.started:
	case <-ctx.Done():
	case <-t.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil, false
	}
	c.wg.Add(1)
	return c.runCtx, true
}
