package rtm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport"
)

// Compile-time checks: the supervisor finds Work and Serve through these interfaces, so a
// drifted signature must not compile.
var (
	_ transport.Link    = (*Link)(nil)
	_ transport.Session = (*session)(nil)
)

// Options tunes timing for tests and unusual deployments. Zero fields take
// the defaults in DefaultOptions.
type Options struct {
	// FirstPingTimeout is how long the socket may stay silent before the
	// service's ping interval is known (then 3× the interval applies).
	FirstPingTimeout time.Duration
	// SetupTimeout bounds session_start → ACTIVE and peer connected.
	SetupTimeout time.Duration
	// StopWait bounds the wait for TERMINATED after session_stop.
	StopWait time.Duration
	// DisconnectedGrace is how long ICE may stay "disconnected" before the
	// session is given up (the service ends it anyway;
	// docs/protocols/webrtc-rtm.md §4.2).
	DisconnectedGrace time.Duration
	// TwoTimerWait is the first wait after TWO_TIMER; it doubles per
	// consecutive TWO_TIMER up to 60 s.
	TwoTimerWait time.Duration
	// SDPErrorWait is the wait after SDP_ERROR (a codec or config bug that
	// a quick retry will not fix).
	SDPErrorWait time.Duration
	// SPSWait bounds how long a link that has not yet seen its camera's SPS
	// waits for one before the first offer, which announces the stream's
	// profile-level-id (docs/protocols/webrtc-rtm.md §6.1). It covers a
	// camera's start (rpicam-vid takes seconds) and one keyframe interval.
	SPSWait time.Duration
	// Loopback forces loopback ICE candidates on. They are on anyway when
	// the service's host is a loopback address.
	Loopback bool
	// UDPPortRange limits the ephemeral ICE ports (0,0 = any).
	UDPPortRange [2]uint16
}

// DefaultOptions are the production timings.
var DefaultOptions = Options{
	FirstPingTimeout:  30 * time.Second,
	SetupTimeout:      20 * time.Second,
	StopWait:          2 * time.Second,
	DisconnectedGrace: 3 * time.Second,
	TwoTimerWait:      5 * time.Second,
	SDPErrorWait:      5 * time.Minute,
	SPSWait:           5 * time.Second,
}

func (o Options) withDefaults() Options {
	d := DefaultOptions
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&o.FirstPingTimeout, d.FirstPingTimeout)
	set(&o.SetupTimeout, d.SetupTimeout)
	set(&o.StopWait, d.StopWait)
	set(&o.DisconnectedGrace, d.DisconnectedGrace)
	set(&o.TwoTimerWait, d.TwoTimerWait)
	set(&o.SDPErrorWait, d.SDPErrorWait)
	set(&o.SPSWait, d.SPSWait)
	return o
}

// Link is the rtm link. Dial opens one session (REST create if api_url,
// WebSocket, peer connection, offer) and returns once the service reports
// ACTIVE and the peer connection is connected; the supervisor owns retries.
//
// Concurrency: Dial is called by one supervisor goroutine at a time;
// StartRecording, StopRecording and Recording may be called from any
// goroutine.
type Link struct {
	cfg  Config
	deps transport.Deps
	opts Options
	log  *slog.Logger

	wantRecord     atomic.Bool
	pingLogged     atomic.Bool  // the first ping frame was logged
	noUploadLogged atomic.Bool  // "no upload_url" was logged
	twoTimers      atomic.Int32 // consecutive TWO_TIMER terminations

	tokens *tokenSource
	waits  *retry.PeerWaits // caps (and logs) the waits the service asks for
	video  videoWatch       // the camera's latest SPS and the problems logged

	mu       sync.Mutex
	cur      *session
	lastTLS  *tls.Config // built from the last readable ca_file (dialTLS)
	caUnread bool        // ca_file was unreadable at the last dial
}

// New returns the link. opts are timings for tests; the zero value is the
// production behaviour.
func New(cfg Config, deps transport.Deps, opts Options) (*Link, error) {
	deps = deps.WithDefaults()
	if deps.Hub == nil {
		return nil, fmt.Errorf("rtm link %q: no sensor hub", deps.Name)
	}
	if cfg.Video == "" {
		return nil, retry.Permanent(fmt.Errorf("rtm link %q: no video sensor", deps.Name))
	}
	l := &Link{cfg: cfg, deps: deps, opts: opts.withDefaults(), log: deps.Logger} // the agent scopes it to the link
	l.tokens = newTokenSource(&l.cfg, l.log, deps.Clock.Now)
	l.waits = retry.NewPeerWaits(l.log)
	l.tokens.waits = l.waits
	l.tokens.secrets, l.tokens.slot = deps.Secrets, "rtm/"+deps.Name+"/token"
	deps.Secrets.Add(cfg.Token, cfg.TokenURLKey)
	for _, s := range cfg.ICEServers {
		deps.Secrets.Add(s.Credential)
	}
	l.wantRecord.Store(cfg.Record.Start != "manual")
	return l, nil
}

// ErrNoSession is returned by recording commands while no session is up;
// the wish is kept and applied when the next session becomes ACTIVE.
var ErrNoSession = errors.New("rtm: no active session")

// StartRecording asks for a recording now and in every later session.
func (l *Link) StartRecording() error { return l.command(true) }

// StopRecording stops the current recording and stops auto-starting it.
func (l *Link) StopRecording() error { return l.command(false) }

func (l *Link) command(on bool) error {
	l.wantRecord.Store(on)
	l.mu.Lock()
	s := l.cur
	l.mu.Unlock()
	if s == nil {
		return ErrNoSession
	}
	c := cmdRecordStop
	if on {
		c = cmdRecordStart
	}
	return s.command(c)
}

// Dial opens one session. A token the service rejects is renewed (see
// tokenSource) and the session dialled once more at once, so an expired
// token costs no backoff step.
func (l *Link) Dial(ctx context.Context) (transport.Session, error) {
	tc, err := l.dialTLS()
	if err != nil {
		return nil, err
	}
	tok, err := l.tokens.current(ctx, tc)
	if err != nil {
		return nil, err
	}
	s, err := l.dial(ctx, tc, tok)
	if errors.Is(err, errTokenRejected) {
		if tok, err = l.tokens.renew(ctx, tc, tok, err); err == nil {
			s, err = l.dial(ctx, tc, tok)
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// isLoopbackURL reports whether the service runs on this host, in which case
// only loopback ICE candidates can reach it on a loopback-only machine.
func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (l *Link) setCurrent(s *session) {
	l.mu.Lock()
	l.cur = s
	l.mu.Unlock()
}

func (l *Link) clearCurrent(s *session) {
	l.mu.Lock()
	if l.cur == s {
		l.cur = nil
	}
	l.mu.Unlock()
}
