package camserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/logx"
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

// Options are tuning knobs that are not user configuration: tests shorten
// them so that a reconnect or a stall is seen in milliseconds.
type Options struct {
	// Watchdog is the least time a frame may wait for the transport before
	// the stream counts as stalled; the effective value is
	// max(3×delta, Watchdog). 0 means 10 s.
	Watchdog time.Duration
	// Budget is the fraction of the per-minute request limit used; 0 = 0.6.
	Budget float64
	// StreamRetry is the backoff between stream reopens; zero fields take
	// 1s → 1m.
	StreamRetry retry.Policy
	// Deliver is the spool delivery backoff; zero fields take 1s → 5m.
	Deliver retry.Policy
	// SnapshotTimeout bounds waiting for a still; 0 means 10 s.
	SnapshotTimeout time.Duration
}

// Link is the camserver link. Concurrency: Dial, Work and the sessions'
// Serve may run concurrently; the current client is guarded by mu.
type Link struct {
	cfg  Config
	deps transport.Deps
	opts Options
	base *url.URL
	log  *slog.Logger
	dev  string

	mu      sync.Mutex
	cur     *Client
	changed chan struct{} // closed and replaced when cur changes

	streamOn  atomic.Bool
	streamReq chan struct{} // wakes the stream loop after stream_start/stop

	gate       *commandGate // who may command this board, and how often
	pace       *pollPace    // the message poll's interval: fast while commands are in use
	ignoredLog logx.Every   // "message ignored" at most once a minute
	refusedLog logx.Every   // "command dropped" at most once a minute

	lastTLS *tls.Config // the last settings built from a readable ca_file (guarded by mu)

	framesSent   atomic.Uint64
	framesDrop   atomic.Uint64
	framesTooBig atomic.Uint64
}

// New returns the link. opts are tuning knobs for tests; the zero value
// is the production behaviour.
func New(cfg Config, deps transport.Deps, opts Options) (*Link, error) {
	deps = deps.WithDefaults()
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("camserver link %q: bad url", deps.Name)
	}
	dev := cfg.Device
	if dev == "" {
		dev = deps.Device.Name
	}
	if err := checkName("device name", dev); err != nil {
		return nil, fmt.Errorf("camserver link %q: %w (set camserver.device)", deps.Name, err)
	}
	if (cfg.Stream.Sensor != "" || cfg.Snapshot != "") && deps.Hub == nil {
		return nil, fmt.Errorf("camserver link %q: sensors configured but no sensor hub", deps.Name)
	}
	if cfg.Stream.Sensor != "" {
		if err := checkName("subproto", cfg.Stream.Subproto); err != nil {
			return nil, fmt.Errorf("camserver link %q: %w", deps.Name, err)
		}
		// A subprotocol that cannot carry the sensor's data is a config
		// error, not something to retry.
		if info, ok := deps.Hub.Info(cfg.Stream.Sensor); ok {
			if _, err := newEncoder(cfg.Stream.Subproto, info, cfg.Stream.Delta.D()); err != nil {
				return nil, fmt.Errorf("camserver link %q: stream: %w", deps.Name, err)
			}
		}
	}
	if opts.Watchdog <= 0 {
		opts.Watchdog = 10 * time.Second
	}
	if opts.StreamRetry.Max == 0 {
		opts.StreamRetry.Max = time.Minute
	}
	if opts.Deliver.Max == 0 {
		opts.Deliver.Max = 5 * time.Minute
	}
	if opts.SnapshotTimeout <= 0 {
		opts.SnapshotTimeout = 10 * time.Second
	}
	l := &Link{cfg: cfg, deps: deps, opts: opts, base: u, dev: dev,
		log: deps.Logger, changed: make(chan struct{}), streamReq: make(chan struct{}, 1),
		gate: newCommandGate(cfg.Commands), pace: newPollPace(&cfg), ignoredLog: logx.Every{Interval: time.Minute},
		refusedLog: logx.Every{Interval: time.Minute}}
	l.streamOn.Store(cfg.Stream.Sensor != "" && cfg.Stream.Start == "auto")
	return l, nil
}

// DeviceName is the name the link authorizes as.
func (l *Link) DeviceName() string { return l.dev }

func (l *Link) setClient(c *Client) {
	l.mu.Lock()
	l.cur = c
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// waitClient returns the client of the live session, waiting for one.
func (l *Link) waitClient(ctx context.Context) (*Client, error) {
	for {
		l.mu.Lock()
		c, ch := l.cur, l.changed
		l.mu.Unlock()
		if c != nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// Dial resolves the server once (both connections use that address, since
// the server binds a session to the client IP), authorizes and reads the
// account limits.
func (l *Link) Dial(ctx context.Context) (transport.Session, error) {
	addr, err := resolve(ctx, l.base)
	if err != nil {
		return nil, err
	}
	p := &pinnedDialer{addr: addr}
	if l.base.Scheme == "https" {
		if p.tls, err = l.tlsConfig(); err != nil {
			return nil, err
		}
	}
	jsonRT, streamRT := newTransport(p), newTransport(p)
	meta, _ := json.Marshal(map[string]string{"agent": "edge-agent", "version": l.deps.Version})
	c := NewClient(l.base, jsonRT, ClientOptions{User: l.cfg.User, Password: l.cfg.Password,
		Device: l.dev, Meta: string(meta), Budget: l.opts.Budget, Clock: l.deps.Clock, Secrets: l.deps.Secrets})
	if err := c.Authorize(ctx); err != nil {
		p.closeAll()
		return nil, classify(err)
	}
	l.log.Info("camserver session authorized", "device", l.dev, "limits", c.Limits())
	l.deps.Stats.SetDetail("session", "up")
	return &session{l: l, c: c, jsonRT: jsonRT, streamRT: streamRT, conns: p}, nil
}

// tlsConfig returns the TLS settings for a new session. ca_file is read at
// every dial, so a replaced certificate takes effect without a restart; a
// file that is missing or unreadable at that moment (an operator replacing
// it) keeps the last good settings, says so in the status detail "ca_file"
// and is read again at the next dial. Without good settings yet it is a
// transient error: the supervisor retries, the file may appear.
func (l *Link) tlsConfig() (*tls.Config, error) {
	tc, err := newTLSConfig(&l.cfg, l.base.Hostname())
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		if l.deps.Stats.Details()["ca_file"] != "" {
			l.log.Info("camserver: ca_file readable again", "file", l.cfg.CAFile)
			l.deps.Stats.SetDetail("ca_file", "")
		}
		l.lastTLS = tc
		return tc, nil
	}
	if l.lastTLS == nil {
		l.deps.Stats.SetDetail("ca_file", "unreadable; retrying")
		return nil, fmt.Errorf("camserver: %w (retrying; is the file being replaced?)", err)
	}
	if l.deps.Stats.Details()["ca_file"] == "" {
		l.log.Warn("camserver: ca_file unreadable; using the CA read before", "err", err)
	}
	l.deps.Stats.SetDetail("ca_file", "unreadable; using the CA read before")
	return l.lastTLS.Clone(), nil
}

// classify marks errors that retrying soon cannot fix. Only answers the
// camera server itself gives (a BAD code in a JSON body) decide that: an
// HTTP 404/405 at authorize is what a proxy or a server being redeployed
// answers for minutes, so it is retried with the normal backoff.
func classify(err error) error {
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Code == CodeNoSuchUser:
		// The server DB may be restored: retry, but slowly
		// (docs/protocols/camera-server.md §7.1).
		return retry.RetryAfter(err, 10*time.Minute)
	case errors.As(err, &ae) && (ae.Code == CodeMalformedRequest || ae.Code == CodeJSONFail):
		return retry.Permanent(err)
	}
	return err
}

// SendMessage sends one message to the account's devices (addMsgs; an
// empty Target is every device) through the live session, waiting for one
// until ctx ends. Params must be a JSON object. Safe for concurrent use.
func (l *Link) SendMessage(ctx context.Context, m Message) error {
	c, err := l.waitClient(ctx)
	if err != nil {
		return fmt.Errorf("camserver message %q: no session: %w", m.Msg, err)
	}
	if err := c.AddMsgs(ctx, m); err != nil {
		return fmt.Errorf("camserver message %q: %w", m.Msg, err)
	}
	return nil
}
