package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/console"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/agent/systemd"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/internal/timesync"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// Bounds of the text /status shows per link.
const (
	maxStatusText   = 1024
	maxStatusDetail = 256
)

// ShutdownTimeout bounds the orderly part of shutdown; systemd's
// TimeoutStopSec (15 s in the shipped unit) is well above it.
const ShutdownTimeout = 4 * time.Second

// Options are the agent's dependencies beyond the config.
type Options struct {
	Logger  *slog.Logger
	Version string
	Env     sensors.Env
	Clock   clock.Clock
	// StatusListener overrides cfg.Status.Listen (tests and demo pass a
	// listener bound to port 0).
	StatusListener net.Listener
	// Notifier reports to systemd; nil sends nothing.
	Notifier *systemd.Notifier
	// Secrets is the set of secrets kept out of logs and status; nil makes
	// a new one. The config's secrets are added to it either way, and the
	// links add the tokens they obtain.
	Secrets *redact.Secrets
	// Time is the board's clock synchronization state, shared by every
	// link and spool (capture stamps); nil reads the system's.
	Time *timesync.Sync
	// Reload asks for a config reload on every value (the command passes
	// its SIGHUP channel); nil never reloads. See reload.go.
	Reload <-chan os.Signal
	// LoadConfig re-reads the config for a reload, as the command read it
	// at start (loaded, validated, device resolved); nil reloads the file
	// the config came from with config.Load.
	LoadConfig func() (*config.Config, error)
	// ApplySettings applies the process-wide settings a reload changes in
	// place (the log level, memory_limit); the command owns them. Nil
	// leaves them as they are and a reload reports them as needing a
	// restart. Called on Run's goroutine.
	ApplySettings func(cfg *config.Config)
}

// Agent is a configured daemon, ready to Run.
//
// Concurrency: Run is called once. Snapshot, Healthy and Reload may be
// called from any goroutine; a reload is carried out on Run's goroutine,
// which alone changes the sensors and links.
type Agent struct {
	opts    Options
	log     *slog.Logger
	hub     *hub.Hub
	started time.Time
	reloads chan reloadRequest // Reload's requests, served by Run
	ended   chan struct{}      // closed when Run returns

	mu         sync.Mutex // guards cfg, links, inference, rules and lastReload (written on Run's goroutine)
	cfg        *config.Config
	links      []*linkRunner
	inference  []*inferenceRunner // the on-device models (inference.go)
	rules      *rules.Engine      // rules[] on the models' results; nil without rules
	lastReload *status.ReloadStatus

	// Owned by New, then by Run's goroutine.
	sensors map[string]*sensorEntry
	linkCtx context.Context // parent of every link's context; ends at shutdown
	linkWG  sync.WaitGroup  // every link goroutine Run started

	stopRules func() // stops the running rules and waits; a no-op when none run
	// inEffect holds the top-level settings in effect: the config New was
	// given, with what reloads applied in place (settingChanges).
	inEffect *config.Config
}

// linkRunner is one configured link: its supervisor, or the reason it could
// not be built (then its state is failed from the start).
type linkRunner struct {
	cfg      config.Link
	key      linkKey // what it was built from, compared by a reload
	stats    *transport.Stats
	spool    *spool.Spool
	sup      *supervisor.Supervisor
	link     transport.Link // nil when it could not be built
	buildErr error
	since    time.Time
	// Set by startLink on Run's goroutine: stop cancels the supervisor,
	// done is closed when its Run has returned.
	stop context.CancelFunc
	done chan struct{}
}

// New builds the agent from a validated config. Only problems that make the
// whole daemon pointless are returned (state_dir cannot be created); a sensor
// or link that cannot be built is reported in /status and the log, and the
// rest runs.
func New(cfg *config.Config, opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Secrets == nil {
		opts.Secrets = redact.New()
	}
	opts.Secrets.Add(cfg.Secrets...)
	// Every log line of the agent, its sensors and links passes the
	// scrubber: a peer's echo of a token must not reach the journal.
	opts.Logger = slog.New(opts.Secrets.Handler(opts.Logger.Handler()))
	if opts.Time == nil {
		opts.Time = timesync.New(timesync.System(), timesync.Options{Logger: opts.Logger})
	}
	if opts.Env.Logger == nil {
		opts.Env.Logger = opts.Logger
	}
	setRoots(&opts.Env)
	inEffect := *cfg
	a := &Agent{cfg: cfg, opts: opts, log: opts.Logger, started: opts.Clock.Now(), inEffect: &inEffect,
		reloads: make(chan reloadRequest), ended: make(chan struct{}), sensors: map[string]*sensorEntry{}}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: state_dir: %w", err)
	}
	a.hub = hub.New(hub.Options{Logger: opts.Logger, Clock: opts.Clock})
	for _, s := range cfg.Sensors {
		e := buildSensor(s, opts.Env)
		if err := e.addTo(a.hub, a.log.Error); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.sensors[s.Name] = e
	}
	if err := a.buildInference(cfg); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, l := range cfg.Links {
		if l.Disabled {
			continue
		}
		a.links = append(a.links, a.buildLink(cfg, l, a.started))
	}
	a.rules = a.newRules(cfg)
	a.stopRules = func() {}
	return a, nil
}

// linkFor returns the running link named name, nil when there is none (a
// rule's action asks at every firing: a reload may have rebuilt the link).
func (a *Agent) linkFor(name string) any {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.links {
		if r.cfg.Name == name && r.link != nil {
			return r.link
		}
	}
	return nil
}

func setRoots(env *sensors.Env) {
	if env.SysRoot == "" {
		env.SysRoot = "/sys"
	}
	if env.DevRoot == "" {
		env.DevRoot = "/dev"
	}
	if env.ProcRoot == "" {
		env.ProcRoot = "/proc"
	}
}

// LinkStateDir is the private directory of a link under state_dir (tokens,
// resumable state). `edge-agent pair` writes the Frame.io tokens there.
func LinkStateDir(stateDir, link string) string { return filepath.Join(stateDir, "links", link) }

// buildLink builds link l of cfg, first shown in /status as of since.
func (a *Agent) buildLink(cfg *config.Config, l config.Link, since time.Time) *linkRunner {
	r := &linkRunner{cfg: l, key: linkKeyOf(cfg, l), stats: &transport.Stats{}, since: since}
	log := a.log.With("link", l.Name, "kind", l.Kind)
	fail := func(err error) *linkRunner {
		r.buildErr = err
		log.Error("link cannot be built; it stays failed", "err", err)
		return r
	}
	dir := LinkStateDir(cfg.StateDir, l.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(fmt.Errorf("state dir: %w", err))
	}
	sp, err := spool.Open(filepath.Join(cfg.StateDir, "spool", l.Name), spool.Options{
		MaxBytes: int64(cfg.Spool.MaxSize), Logger: log, Clock: a.opts.Clock, Time: a.opts.Time,
		Manual: cfg.Spool.Upload == "manual"})
	if err != nil {
		return fail(err)
	}
	r.spool = sp
	deps := transport.Deps{
		Name: l.Name, Logger: log, Hub: a.hub, StateDir: dir, Spool: sp, Stats: r.stats,
		Clock: a.opts.Clock, Time: a.opts.Time, Version: a.opts.Version, Secrets: a.opts.Secrets,
		Device: transport.Device{ID: cfg.Device.ID, Name: cfg.Device.Name, Type: cfg.Device.Type},
	}
	link, err := NewLink(l, deps)
	if err != nil {
		return fail(err)
	}
	r.link = link
	a.attachMonitor(l.Name, link)
	b := cfg.Backoff
	if l.Backoff != nil {
		b = *l.Backoff
	}
	r.sup = supervisor.New(supervisor.Options{
		Name: l.Name, Kind: l.Kind, Link: link, Clock: a.opts.Clock, Logger: a.log,
		Policy: retry.Policy{Min: b.Min.D(), Max: b.Max.D(), Jitter: b.Jitter, StableAfter: b.StableAfter.D(), Factor: 2},
	})
	return r
}

// Config returns the config in effect: the one New was given, or the last
// one a reload applied.
func (a *Agent) Config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// uploadQueues is the spool of each running link that delivers one (a
// transport.Worker; rtm has none to show), for the console's uploads view
// (a reload may replace a link and its spool).
func (a *Agent) uploadQueues() []console.UploadQueue {
	a.mu.Lock()
	links := a.links
	a.mu.Unlock()
	var out []console.UploadQueue
	for _, r := range links {
		if _, delivers := r.link.(transport.Worker); r.spool != nil && delivers {
			out = append(out, console.UploadQueue{Link: r.cfg.Name, Kind: r.cfg.Kind, Spool: r.spool})
		}
	}
	return out
}

// frameioLinks is each enabled frameio link of the config in effect, with
// where it reads its tokens, for pairing in the console.
func (a *Agent) frameioLinks() []console.FrameIOLink {
	cfg := a.Config()
	var out []console.FrameIOLink
	for _, l := range cfg.Links {
		fc, ok := l.Block.(*frameio.Config)
		if l.Kind != "frameio" || !ok || l.Disabled {
			continue
		}
		out = append(out, console.FrameIOLink{Link: l.Name, Config: *fc,
			TokenPath: frameio.TokenPath(fc, LinkStateDir(cfg.StateDir, l.Name))})
	}
	return out
}

// Hub returns the sensor hub (for tests and the sample command).
func (a *Agent) Hub() *hub.Hub { return a.hub }

// Run runs the daemon until ctx ends, then shuts down in the documented
// order. Between the two it serves reloads (Options.Reload, Reload). It
// returns an error only when the status server cannot listen.
func (a *Agent) Run(ctx context.Context) error {
	defer close(a.ended)
	ln := a.opts.StatusListener
	if ln == nil && a.cfg.Status.Listen != "" {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Status.Listen); err != nil {
			a.hub.Close()
			return fmt.Errorf("agent: status listen: %w", err)
		}
	}
	statusCtx, stopStatus := context.WithCancel(context.WithoutCancel(ctx))
	var statusWG sync.WaitGroup
	statusAddr := "disabled"
	if ln != nil {
		statusAddr = ln.Addr().String()
		srv := status.New(a.Snapshot, a.log)
		srv.AllowHost(statusHosts(a.cfg.Status.Listen)...)
		if a.cfg.Status.Pprof {
			srv.EnablePprof()
			a.log.Info("profiler enabled", "url", "http://"+statusAddr+"/debug/pprof/")
		}
		// The web console takes over the page at / (agent/console); it
		// ends its live streams when statusCtx ends, before the server's
		// graceful shutdown waits for them.
		con, err := console.New(console.Options{Hub: a.hub, Snapshot: a.Snapshot, Config: a.Config,
			Secrets: a.opts.Secrets, Listen: ln.Addr(), TokenFile: console.TokenPath(a.cfg),
			OpenReadonly: a.cfg.Status.OpenReadonly, CaptureDir: console.CaptureDir(a.cfg),
			Version: a.opts.Version, Logger: a.log, Clock: a.opts.Clock,
			Uploads: a.uploadQueues, FrameIO: a.frameioLinks})
		if err != nil {
			a.log.Error("web console unavailable; the status page stays", "err", err)
		} else {
			srv.Mount(con.Handler(), console.Prefixes...)
			statusWG.Add(1)
			go func() {
				defer statusWG.Done()
				_ = con.Run(statusCtx)
			}()
		}
		statusWG.Add(1)
		go func() {
			defer statusWG.Done()
			if err := srv.Serve(statusCtx, ln); err != nil {
				a.log.Error("status server stopped", "err", err)
			}
		}()
	}
	defer func() {
		stopStatus()
		statusWG.Wait()
	}()

	linkCtx, stopLinks := context.WithCancel(context.WithoutCancel(ctx))
	a.linkCtx = linkCtx
	for _, r := range a.links {
		a.startLink(r)
	}
	stopInference := a.runInference(linkCtx)
	a.stopRules = a.runRules(linkCtx, a.rules)

	n := a.opts.Notifier
	if n == nil {
		n = systemd.New(a.log)
	}
	n.Ready(fmt.Sprintf("%d sensors, %d links", len(a.cfg.Sensors), len(a.links)))
	a.log.Info("agent started", "version", a.opts.Version, "device", a.cfg.Device.Name,
		"sensors", len(a.cfg.Sensors), "links", len(a.links), "status", statusAddr)
	var wdWG sync.WaitGroup
	wdCtx, stopWD := context.WithCancel(ctx)
	wdWG.Add(1)
	go func() {
		defer wdWG.Done()
		n.Watchdog(wdCtx, a.Healthy)
	}()

	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-a.opts.Reload: // nil: never
			_, _ = a.reload(ctx, n) // logged and shown in /status
		case req := <-a.reloads:
			st, err := a.reload(ctx, n)
			req.reply <- reloadReply{st, err}
		}
	}
	n.Stopping()
	a.log.Info("agent stopping")
	stopWD()
	wdWG.Wait()
	a.stopRules() // first: a recording a rule started is stopped while its link runs
	stopLinks()
	done := make(chan struct{})
	go func() {
		a.linkWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(ShutdownTimeout):
		a.log.Error("links did not stop in time; exiting anyway", "timeout", ShutdownTimeout)
	}
	stopInference()
	a.hub.Close() // stops the models' processes with their streams
	a.log.Info("agent stopped")
	return nil
}

// statusHosts are the names the status server answers to besides localhost
// and IP literals: status.listen's host and this board's host name (plain
// and .local, as mDNS resolves it).
func statusHosts(listen string) []string {
	var out []string
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		out = append(out, host)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		out = append(out, h, h+".local")
	}
	return out
}

// Healthy is the watchdog's progress check: the hub and supervisors answer
// (no deadlock), and every sensor that is running for a subscriber produced
// a sample recently.
func (a *Agent) Healthy() error {
	done := make(chan status.Snapshot, 1)
	go func() { done <- a.Snapshot() }()
	var snap status.Snapshot
	select {
	case snap = <-done:
	case <-time.After(5 * time.Second):
		return errors.New("status snapshot did not complete in 5s (deadlock?)")
	}
	now := a.opts.Clock.Now()
	for _, s := range snap.Sensors {
		// A model's results pause while its model downloads or its input
		// pauses; its input is checked on its own.
		if s.State != hub.StateRunning || s.Subscribers == 0 || s.LastSample.IsZero() || s.Class == sensors.Inference.String() {
			continue
		}
		if age := now.Sub(s.LastSample); age > 2*time.Minute {
			return fmt.Errorf("sensor %s running but silent for %s", s.Name, age.Round(time.Second))
		}
	}
	return nil
}

// Snapshot returns the current /status document.
func (a *Agent) Snapshot() status.Snapshot {
	a.mu.Lock() // a reload replaces cfg, links, inference, rules and lastReload, never changes them
	cfg, links, reload, eng, models := a.cfg, a.links, a.lastReload, a.rules, a.inference
	a.mu.Unlock()
	s := status.Snapshot{
		Device:  status.Device{ID: cfg.Device.ID, Name: cfg.Device.Name, Type: cfg.Device.Type, Model: cfg.Device.Model},
		Clock:   status.Clock{Synced: a.opts.Time.Synced()},
		Version: a.opts.Version, Started: a.started,
		Links: []status.LinkStatus{}, Sensors: []status.SensorStatus{}, Reload: reload,
	}
	for _, r := range links {
		ls := status.LinkStatus{Name: r.cfg.Name, Kind: r.cfg.Kind,
			BytesIn: r.stats.BytesIn.Load(), BytesOut: r.stats.BytesOut.Load(),
			MsgsIn: r.stats.MsgsIn.Load(), MsgsOut: r.stats.MsgsOut.Load(), Details: r.stats.Details()}
		if len(ls.Details) == 0 {
			ls.Details = nil
		}
		if r.sup != nil {
			st := r.sup.Status()
			ls.State, ls.Since, ls.LastError, ls.Reconnects = string(st.State), st.Since, st.LastError, st.Reconnects
			ls.Sessions = st.Sessions
		} else {
			ls.State, ls.Since, ls.LastError = string(supervisor.Failed), r.since, r.buildErr.Error()
		}
		// A backstop behind the links' own cleaning: no registered secret
		// and no unbounded text reaches /status or the page.
		ls.LastError = a.opts.Secrets.Peer(ls.LastError, maxStatusText)
		for k, v := range ls.Details {
			ls.Details[k] = a.opts.Secrets.Peer(v, maxStatusDetail)
		}
		if r.spool != nil {
			sp := r.spool.Stats()
			ls.Spool = &status.SpoolStatus{Items: sp.Items, Bytes: sp.Bytes, Refused: sp.Refused,
				Delivered: sp.Delivered, Rejected: sp.Rejected, Cancelled: sp.Cancelled}
		}
		s.Links = append(s.Links, ls)
	}
	for _, h := range a.hub.Stats() {
		ss := status.SensorStatus{Name: h.Name, Kind: h.Kind, Class: h.Class,
			State: h.State, Subscribers: h.Subscribers, Samples: h.Samples, Dropped: h.Dropped,
			Restarts: h.Restarts, LastError: h.LastError, LastSample: h.LastSample, Stalls: h.Stalls}
		if !h.LastStall.At.IsZero() {
			ss.LastStall = &status.StallStatus{At: h.LastStall.At, Reason: h.LastStall.Reason}
		}
		s.Sensors = append(s.Sensors, ss)
	}
	// A microphone's native rate is known once its device is open.
	for i := range s.Sensors {
		if info, ok := a.hub.Info(s.Sensors[i].Name); ok {
			s.Sensors[i].NativeRate = info.NativeRate
		}
	}
	s.Inference = a.inferenceStatus(models)
	s.Rules = a.rulesStatus(eng)
	return s
}
