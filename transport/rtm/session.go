package rtm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/rtm/internal/pionapi"
)

// TerminatedError is a session the service ended with session_state
// TERMINATED. Cause is the termination_cause (unknown causes are kept as
// sent but classified like CONN_ERROR).
type TerminatedError struct{ Cause string }

func (e *TerminatedError) Error() string {
	return "rtm session terminated by service: " + e.Cause
}

type command int

const (
	cmdRecordStart command = iota + 1
	cmdRecordStop
	cmdStop
)

// session is one RTM session. One event-loop goroutine (run) owns the
// protocol state; the peer's pion callbacks only post to bounded channels;
// the media pumps are per session. Close stops and waits for all of them,
// the peer's and the socket's goroutines included.
type session struct {
	l    *Link
	log  *slog.Logger
	sig  *signal
	peer *peer

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // run and the pumps

	connected chan struct{} // closed when the peer connection is connected
	up        chan struct{} // closed when ACTIVE and connected
	done      chan struct{} // closed when the session ended (err holds why)
	stopped   chan struct{} // closed when run returned
	errOnce   sync.Once
	err       error

	cmds chan command
	// remoteDrops counts remote candidates over maxRemoteCandidates (set
	// by run, read by Close).
	remoteDrops atomic.Int64

	video, audio sensors.Subscription // audio is nil without audio
	check        *videoCheck          // inspects what video publishes
	counters     mediaCounters
	started      time.Time

	running   atomic.Bool           // run was started (so cmdStop will be answered)
	stopErr   atomic.Pointer[error] // why the session stopped itself (stopFor), nil when Close stopped it
	closeOnce sync.Once
}

// endpoint is where one session's signalling goes and the ICE servers its
// peer uses.
type endpoint struct {
	wsURL     string
	sessionID string // "" without api_url: the service names it in its messages
	ice       []webrtc.ICEServer
}

// dial sets up one session presenting token, in the protocol's order
// (docs/protocols/webrtc-rtm.md §5): REST session (first, so a failing
// backend never starts the camera), subscriptions, the stream's
// profile-level-id, peer, signalling, offer, then the wait for ACTIVE and
// connected. A session that fails half-way is closed, which stops whatever
// it had started.
func (l *Link) dial(ctx context.Context, tc *tls.Config, token string) (_ *session, err error) {
	cfg := l.cfg
	cfg.Token = token
	ep, err := l.sessionEndpoint(ctx, &cfg, tc)
	if err != nil {
		return nil, err
	}
	s := l.newSession()
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.subscribe(); err != nil {
		return nil, err
	}
	plid, err := s.announce(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.openPeer(ep, plid); err != nil {
		return nil, err
	}
	if err := s.openSignal(ctx, &cfg, tc, ep); err != nil {
		return nil, err
	}
	if err := s.sendOffer(&cfg); err != nil {
		return nil, err
	}
	s.start()
	if err := s.waitUp(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// sessionEndpoint asks the REST API for the session when api_url is set
// (its id, short-lived ICE servers and WebSocket endpoint); otherwise the
// config's url and ice_servers are the endpoint.
func (l *Link) sessionEndpoint(ctx context.Context, cfg *Config, tc *tls.Config) (endpoint, error) {
	ep := endpoint{wsURL: cfg.URL, ice: iceServers(cfg.ICEServers)}
	if cfg.APIURL == "" {
		return ep, nil
	}
	rs, err := createSession(ctx, cfg, tc, l.waits, l.deps.Clock)
	if err != nil {
		return ep, err
	}
	ep.wsURL, ep.sessionID = rs.WSEndpoint, rs.SessionID
	if len(rs.ICECredentials.ICEServers) > 0 {
		ep.ice = rs.ICECredentials.ICEServers
	}
	return ep, nil
}

func (l *Link) newSession() *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		l: l, log: l.log, ctx: ctx, cancel: cancel,
		connected: make(chan struct{}), up: make(chan struct{}), done: make(chan struct{}),
		stopped: make(chan struct{}), cmds: make(chan command, 4), started: l.deps.Clock.Now(),
	}
	s.counters.stats = l.deps.Stats
	s.check = l.newVideoCheck()
	return s
}

// subscribe takes the video (and audio) subscriptions the pumps read.
func (s *session) subscribe() error {
	l := s.l
	vsub, err := l.deps.Hub.Subscribe(l.cfg.Video, sensors.SubscribeOptions{Queue: 30, Policy: sensors.DropOldest, Label: l.deps.Name})
	if err != nil {
		return classifySubscribe("video", l.cfg.Video, err)
	}
	s.video = vsub
	if l.cfg.Audio != "" {
		asub, err := l.deps.Hub.Subscribe(l.cfg.Audio, sensors.SubscribeOptions{Queue: 50, Policy: sensors.DropOldest, Label: l.deps.Name})
		if err != nil {
			return classifySubscribe("audio", l.cfg.Audio, err)
		}
		s.audio = asub
	}
	return nil
}

// openPeer makes the session's peer connection for ep, announcing H.264
// with profileLevelID.
func (s *session) openPeer(ep endpoint, profileLevelID string) (err error) {
	s.peer, err = newPeer(peerConfig{
		ice: ep.ice, loopback: s.l.opts.Loopback || isLoopbackURL(ep.wsURL), udpPorts: s.l.opts.UDPPortRange,
		h264Fmtp: pionapi.H264Fmtp(profileLevelID),
		audio:    s.audio != nil, sdpErrorWait: s.l.opts.SDPErrorWait, counters: &s.counters, log: s.log,
	})
	if err == nil {
		s.l.deps.Stats.SetDetail(DetailVideoProfileLevelID, profileLevelID)
	}
	return err
}

// openSignal opens the WebSocket to ep and starts its reader and writer.
func (s *session) openSignal(ctx context.Context, cfg *Config, tc *tls.Config, ep endpoint) (err error) {
	l := s.l
	s.sig, err = dialSignal(ctx, cfg, ep.wsURL, tc, signalOptions{
		stats: l.deps.Stats, clock: l.deps.Clock, firstPing: l.opts.FirstPingTimeout, waits: l.waits,
	})
	if err != nil {
		return err
	}
	if ep.sessionID != "" {
		s.sig.setSessionID(ep.sessionID)
	}
	s.sig.start(func(raw []byte) {
		// The ping's shape is not documented (docs/protocols/webrtc-rtm.md
		// §3.3): show it once per link.
		if l.pingLogged.CompareAndSwap(false, true) {
			s.log.Info("rtm first ping from the service", "frame", l.peer(string(raw)))
		}
	})
	return nil
}

// sendOffer sends session_start with the peer's offer.
func (s *session) sendOffer(cfg *Config) error {
	offer, err := s.peer.offer()
	if err != nil {
		return err
	}
	if err := s.sig.send(TypeSessionStart, SDPData{SDP: offer, WebhookURL: cfg.WebhookURL, Version: s.l.deps.Version}); err != nil {
		return err
	}
	s.l.deps.Stats.SetDetail("session", StateInit)
	return nil
}

// start runs the event loop and the media pumps; Close stops and waits for
// them.
func (s *session) start() {
	s.running.Store(true)
	s.check.end = s.stopFor // before the pump starts: the pump owns the check from then on
	s.wg.Go(func() {
		defer close(s.stopped)
		s.run()
	})
	now := s.l.deps.Clock.Now
	s.wg.Go(func() {
		videoPump(s.ctx, s.connected, s.video, s.peer.video, s.peer.keyReq, &s.counters, s.check, s.log, now)
	})
	if s.audio != nil {
		s.wg.Go(func() { audioPump(s.ctx, s.connected, s.audio, s.peer.audio, &s.counters) })
	}
}

// waitUp waits, at most SetupTimeout, until the service says ACTIVE and the
// peer connection is connected.
func (s *session) waitUp(ctx context.Context) error {
	l := s.l
	setup := clock.AfterTimer(l.deps.Clock, l.opts.SetupTimeout)
	defer setup.Stop()
	select {
	case <-s.up:
		l.setCurrent(s)
		l.log.Info("rtm session up", "session", *s.sig.sessionID.Load(), "setup", s.since().Round(time.Millisecond))
		return nil
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	case <-setup.C():
		return fmt.Errorf("rtm setup: not ACTIVE and connected after %v", l.opts.SetupTimeout)
	}
}

// since is how long ago the session was started, on the link's clock.
func (s *session) since() time.Duration { return s.l.deps.Clock.Now().Sub(s.started) }

func classifySubscribe(field, name string, err error) error {
	if errors.Is(err, sensors.ErrUnknownSensor) {
		return retry.Permanent(fmt.Errorf("rtm %s sensor %q: %w", field, name, err))
	}
	return fmt.Errorf("rtm %s sensor %q: %w", field, name, err)
}

// errClosed ends a session that Close ended.
var errClosed = errors.New("rtm session closed")

// finish records why the session ended (first call wins).
func (s *session) finish(err error) {
	s.errOnce.Do(func() {
		s.err = err
		close(s.done)
		if err != nil && !errors.Is(err, errStopped) && !errors.Is(err, context.Canceled) && !errors.Is(err, errClosed) {
			s.log.Info("rtm session ended", "err", err, "after", s.since().Round(time.Millisecond))
		}
	})
}

// stopFor ends the session from inside, the way Close does
// (docs/protocols/webrtc-rtm.md §5 step 9: recording_stop, session_stop,
// the wait for TERMINATED, so the next session meets no TWO_TIMER), and
// makes err what Serve returns. Safe from any goroutine; only the first
// reason counts.
func (s *session) stopFor(err error) {
	if !s.stopErr.CompareAndSwap(nil, &err) {
		return
	}
	if s.command(cmdStop) != nil {
		s.finish(err) // the loop is gone or its queue is full: end without the messages
	}
}

// stopResult is what a session that was stopping ends with: the reason
// given to stopFor, else def.
func (s *session) stopResult(def error) error {
	if p := s.stopErr.Load(); p != nil {
		return *p
	}
	return def
}

func (s *session) command(c command) error {
	select {
	case <-s.done:
		return ErrNoSession
	default:
	}
	select {
	case s.cmds <- c:
		return nil
	default:
		return errors.New("rtm: command queue full")
	}
}

// Serve blocks until the session ends or ctx ends.
func (s *session) Serve(ctx context.Context) error {
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return nil
	}
}

// Close ends the session in the protocol's order (docs/protocols/webrtc-rtm.md
// §5): recording_stop (if recording), session_stop, a bounded wait for
// TERMINATED, then the peer connection and the socket. It waits for every
// goroutine the session started. Safe to call more than once and after Serve.
func (s *session) Close() error {
	s.closeOnce.Do(s.close)
	return nil
}

func (s *session) close() {
	s.l.clearCurrent(s)
	if s.running.Load() {
		select {
		case <-s.stopped:
		default:
			select {
			case <-s.done:
			case s.cmds <- cmdStop:
				// run sends the stop messages and waits for TERMINATED.
				t := clock.AfterTimer(s.l.deps.Clock, s.l.opts.StopWait+time.Second)
				select {
				case <-s.done:
				case <-t.C():
				}
				t.Stop()
			}
		}
	}
	s.finish(errClosed)
	s.cancel()
	if s.peer != nil {
		s.peer.close() // and its RTCP readers
	}
	if s.sig != nil {
		s.sig.close()
	}
	for _, sub := range []sensors.Subscription{s.video, s.audio} {
		if sub != nil {
			sub.Close() // closes C: the pumps return
		}
	}
	s.wg.Wait()
	s.l.deps.Stats.SetDetail("session", StateTerminated)
	s.log.Debug("rtm session closed", "video_frames", s.counters.videoFrames.Load(),
		"audio_packets", s.counters.audioPackets.Load(), "keyframe_requests", s.counters.keyRequests.Load(),
		"candidates_dropped", s.peer.candDropsOrZero(),
		"remote_candidates_dropped", s.remoteDrops.Load(), "pongs_dropped", s.sig.pongsDroppedOrZero())
}

func (g *signal) pongsDroppedOrZero() int64 {
	if g == nil {
		return 0
	}
	return g.pongsDropped.Load()
}
