package frameio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport"
)

// Compile-time checks: the supervisor finds Work and Serve through these interfaces, so a
// drifted signature must not compile.
var (
	_ transport.Link    = (*Link)(nil)
	_ transport.Session = (*session)(nil)
	_ transport.Worker  = (*Link)(nil)
)

// Options are the link's timings and sizes. Production uses the zero value
// (the figures of docs/protocols/frameio-c2c.md); tests shrink them so an
// hour of heartbeats runs in seconds.
type Options struct {
	// Heartbeat is the heartbeat period and reply deadline (15 s,
	// docs/protocols/frameio-c2c.md §4.4).
	Heartbeat     time.Duration
	DeadAfter     time.Duration // no frame at all for this long: dead (30 s)
	JoinTimeout   time.Duration // join/push reply deadline (10 s)
	IdentityEvery time.Duration // at most one /v2/devices/me per period (60 s)
	Rejoin        retry.Policy  // after phx_error: 1 s, 2 s, 5 s… 10 s
	// NotPairedWait is how long Dial asks the supervisor to wait while no
	// token file exists (30 s).
	NotPairedWait time.Duration

	Deliver      retry.Policy // spool delivery backoff between item attempts
	PartRetry    retry.Policy // backoff between attempts of one part
	PartAttempts int          // attempts per part within one delivery (3)
	PartSize     int64        // target part size (25 MiB)
	MinPartSize  int64        // S3's floor for every part but the last (5 MiB)
	URLLifetime  time.Duration
	// ClockFloor: before this wall time the clock is not plausible (no RTC
	// before NTP sync), so asset creation waits
	// (docs/protocols/frameio-c2c.md §5.3).
	ClockFloor     time.Time
	ClockWait      time.Duration // how long to wait before re-checking the clock (10 s)
	WatchEvery     time.Duration // watch_dir scan period (2 s)
	CaptureTimeout time.Duration // wait for a still (10 s)
	// Ticker paces heartbeats; nil ticks on the link's clock (Deps.Clock).
	// Tests drive it by hand to simulate hours of heartbeats exactly.
	Ticker func(d time.Duration) (c <-chan time.Time, stop func())
}

// withDefaults fills the zero fields; heartbeats tick on clk.
func (o Options) withDefaults(clk clock.Clock) Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Heartbeat, 15*time.Second)
	def(&o.DeadAfter, 2*o.Heartbeat)
	def(&o.JoinTimeout, 10*time.Second)
	def(&o.IdentityEvery, 60*time.Second)
	def(&o.NotPairedWait, 30*time.Second)
	def(&o.URLLifetime, 23*time.Hour)
	def(&o.ClockWait, 10*time.Second)
	def(&o.WatchEvery, 2*time.Second)
	def(&o.CaptureTimeout, 10*time.Second)
	if o.Ticker == nil {
		o.Ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := clock.NewTicker(context.Background(), clk, d)
			return t.C, t.Stop
		}
	}
	if o.Rejoin.Min == 0 {
		o.Rejoin = retry.Policy{Min: time.Second, Max: 10 * time.Second, Factor: 2, Jitter: 0.2}
	}
	if o.Deliver.Min == 0 {
		o.Deliver = retry.Policy{Min: 2 * time.Second, Max: 2 * time.Minute, Factor: 2, Jitter: 0.2}
	}
	if o.PartRetry.Min == 0 {
		o.PartRetry = retry.Policy{Min: time.Second, Max: 10 * time.Second, Factor: 2, Jitter: 0.2}
	}
	if o.PartAttempts <= 0 {
		o.PartAttempts = 3
	}
	if o.MinPartSize <= 0 {
		o.MinPartSize = 5 << 20
	}
	if o.PartSize < o.MinPartSize {
		o.PartSize = max(25<<20, o.MinPartSize)
	}
	if o.ClockFloor.IsZero() {
		o.ClockFloor = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return o
}

// Link is one Frame.io C2C link. Dial/Serve run under the supervisor; Work
// (capture and upload) runs beside them for the link's whole life.
//
// Concurrency: Dial, Work and the sessions may run concurrently; shared
// state (identity, paused) is guarded by mu.
type Link struct {
	cfg    Config
	deps   transport.Deps
	opts   Options
	log    *slog.Logger
	api    *api
	tokens *tokenSource
	dialer wsDialer

	mu        sync.Mutex
	ident     *Identity
	identAt   time.Time
	paused    bool
	pausedAt  time.Time
	unknownEv map[string]bool

	hbAcked atomic.Uint64 // heartbeat replies received, all sessions

	urlsGC sync.Once // removeStaleURLs, before the first delivery
}

// HeartbeatsAcked counts heartbeat replies received over the link's life.
func (l *Link) HeartbeatsAcked() uint64 { return l.hbAcked.Load() }

// New returns the link. opts are timings for tests; the zero value is the
// production behaviour.
func New(cfg Config, deps transport.Deps, opts Options) (*Link, error) {
	deps = deps.WithDefaults()
	if cfg.Upload.Parallel <= 0 {
		cfg.Upload.Parallel = 2
	}
	if deps.StateDir == "" && cfg.TokenFile == "" {
		return nil, fmt.Errorf("frameio link %q: no state directory for the tokens", deps.Name)
	}
	if (cfg.Upload.Every.D() > 0 || cfg.Upload.WatchDir != "") && deps.Spool == nil {
		return nil, fmt.Errorf("frameio link %q: uploads configured but no spool", deps.Name)
	}
	if deps.Spool != nil && deps.StateDir == "" {
		return nil, fmt.Errorf("frameio link %q: a spool but no state directory for the upload URLs", deps.Name)
	}
	a, err := newAPI(&cfg, deps.Version, deps.Clock)
	if err != nil {
		return nil, fmt.Errorf("frameio link %q: %w", deps.Name, err)
	}
	_, tc, err := newHTTPClient(&cfg)
	if err != nil {
		return nil, fmt.Errorf("frameio link %q: %w", deps.Name, err)
	}
	a.secrets = deps.Secrets
	deps.Secrets.Add(cfg.ClientSecret)
	l := &Link{cfg: cfg, deps: deps, opts: opts.withDefaults(deps.Clock), log: deps.Logger, api: a,
		unknownEv: map[string]bool{}}
	l.tokens = newTokenSource(TokenPath(&cfg, deps.StateDir), a, cfg.ClientID, cfg.ClientSecret, deps.Clock, deps.Logger)
	l.tokens.secrets, l.tokens.slot = deps.Secrets, "frameio/"+deps.Name
	a.waits = retry.NewPeerWaits(deps.Logger)
	l.dialer = newWSDialer(tc, a.version, deps.Clock)
	l.dialer.waits = a.waits
	l.log.Info("frameio link configured", "x-client-version", a.version, "client_id", cfg.ClientID)
	l.setPaused(false, "")
	return l, nil
}

// Dial makes one attempt: token, identity, socket, join. A 403 on the
// upgrade refreshes the token and dials once more at once, so an expired
// token costs no backoff step.
func (l *Link) Dial(ctx context.Context) (transport.Session, error) {
	l.deps.Stats.SetDetail("socket", "connecting")
	sess, err := l.dial(ctx)
	if err != nil {
		l.deps.Stats.SetDetail("socket", "disconnected")
		return nil, err
	}
	l.deps.Stats.SetDetail("socket", "joined")
	return sess, nil
}

func (l *Link) dial(ctx context.Context) (*session, error) {
	access, err := l.access(ctx)
	if err != nil {
		return nil, err
	}
	id, access, err := l.identity(ctx, access)
	if err != nil {
		return nil, err
	}
	conn, err := l.dialer.dial(ctx, l.cfg.SocketURL, access)
	if errors.Is(err, errSocketForbidden) {
		if access, err = l.refresh(ctx, access); err != nil {
			return nil, err
		}
		conn, err = l.dialer.dial(ctx, l.cfg.SocketURL, access)
		if errors.Is(err, errSocketForbidden) {
			return nil, fmt.Errorf("socket: refused with a fresh token: %w", err)
		}
	}
	if err != nil {
		if retry.IsPermanent(err) {
			return nil, err
		}
		if _, ok := retry.After(err); ok {
			return nil, err
		}
		return nil, l.explainNetErr(ctx, err)
	}
	l.log.Info("socket_connected")
	s := &session{l: l, conn: conn, done: make(chan struct{})}
	if err := s.join(ctx, id.topics()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Paused reports the last known paused state.
func (l *Link) Paused() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.paused
}

func (l *Link) setPaused(p bool, why string) {
	l.mu.Lock()
	changed := l.paused != p
	l.paused = p
	if changed && p {
		l.pausedAt = l.deps.Clock.Now()
	}
	l.mu.Unlock()
	l.deps.Stats.SetDetail("paused", fmt.Sprint(p))
	if changed {
		l.log.Info("status_changed", "paused", p, "via", why)
	}
}

// pausedSince returns when the current pause began, if paused. A pause
// learnt from devices/me may have begun earlier; the server decides from
// offset in that case (docs/protocols/frameio-c2c.md §5.3).
func (l *Link) pausedSince() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pausedAt, l.paused
}

// access returns an access token; not being paired is a wait, not a
// failure, so pairing while the daemon runs takes effect on the next try.
func (l *Link) access(ctx context.Context) (string, error) {
	tok, err := l.tokens.Access(ctx)
	switch {
	case errors.Is(err, ErrNotPaired):
		l.deps.Stats.SetDetail("pairing", "unpaired")
		return "", retry.RetryAfter(err, l.opts.NotPairedWait)
	case errors.Is(err, ErrRepairNeeded):
		l.deps.Stats.SetDetail("pairing", "re-pair needed")
		return "", err
	case err != nil:
		return "", err
	}
	l.deps.Stats.SetDetail("pairing", "paired")
	return tok, nil
}

// refresh replaces a refused access token, recording a lost authorization
// in /status.
func (l *Link) refresh(ctx context.Context, stale string) (string, error) {
	tok, err := l.tokens.Refresh(ctx, stale)
	if errors.Is(err, ErrRepairNeeded) {
		l.deps.Stats.SetDetail("pairing", "re-pair needed")
	}
	return tok, err
}

// identity returns the device identity, asking Frame.io at most once per
// IdentityEvery (unless force is set and the last answer is older than that
// anyway). A 401 refreshes the token and asks once more
// (docs/protocols/frameio-c2c.md §2.4, §3.1).
func (l *Link) identity(ctx context.Context, access string) (*Identity, string, error) {
	l.mu.Lock()
	id, at := l.ident, l.identAt
	l.mu.Unlock()
	if id != nil && l.deps.Clock.Now().Sub(at) < l.opts.IdentityEvery {
		return id, access, nil
	}
	id, err := l.api.me(ctx, access)
	if isAuthError(err) {
		if access, err = l.refresh(ctx, access); err != nil {
			return nil, "", err
		}
		id, err = l.api.me(ctx, access)
	}
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			return nil, "", classifyLink(ae)
		}
		return nil, "", l.explainNetErr(ctx, err)
	}
	l.mu.Lock()
	first := l.ident == nil || l.ident.Project.ID != id.Project.ID || l.ident.Project.Name != id.Project.Name
	l.ident, l.identAt = id, l.deps.Clock.Now()
	l.mu.Unlock()
	if first {
		l.log.Info("frameio identity", "device_id", l.peer(id.ID), "project", l.peer(id.Project.Name),
			"authorized_by", l.peer(id.Authorization.Creator.Name))
	}
	l.deps.Stats.SetDetail("project", l.peer(id.Project.Name))
	l.deps.Stats.SetDetail("authorized_by", l.peer(id.Authorization.Creator.Name))
	l.setPaused(id.Status == "paused", "devices/me")
	return id, access, nil
}

// explainNetErr asks /health after a network failure so the error (and
// /status) tells "Frame.io unreachable" from "Frame.io is up but this call
// failed".
func (l *Link) explainNetErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	herr := l.api.health(ctx)
	var ae *APIError
	switch {
	case herr == nil:
		l.deps.Stats.SetDetail("api_health", "ok")
		return fmt.Errorf("%w (Frame.io /health is ok)", err)
	case errors.As(herr, &ae):
		l.deps.Stats.SetDetail("api_health", "degraded")
		return fmt.Errorf("%w (Frame.io /health answers HTTP %d: Frame.io trouble)", err, ae.Status)
	default:
		l.deps.Stats.SetDetail("api_health", "unreachable")
		return fmt.Errorf("%w (Frame.io unreachable: offline or blocked network)", err)
	}
}

// logEventOnce logs an undocumented event name once at info
// (docs/protocols/frameio-c2c.md §4.5).
func (l *Link) logEventOnce(ev string) {
	l.mu.Lock()
	seen := l.unknownEv[ev]
	if !seen && len(l.unknownEv) < 64 {
		l.unknownEv[ev] = true
	}
	l.mu.Unlock()
	if !seen {
		l.log.Info("frameio: ignoring unknown event", "event", l.peer(ev))
	}
}

// peer makes a string Frame.io supplied safe to log or show: registered
// secrets masked, control characters removed, at most maxPeerText bytes.
func (l *Link) peer(s string) string { return l.deps.Secrets.Peer(s, maxPeerText) }
