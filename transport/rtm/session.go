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

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
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
// protocol state; pion callbacks only post to bounded channels; the media
// pumps and RTCP readers are per session. Close stops and waits for all of
// them.
type session struct {
	l   *Link
	log *slog.Logger
	sig *signal
	pc  *webrtc.PeerConnection

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	connected chan struct{} // closed when the peer connection is connected
	up        chan struct{} // closed when ACTIVE and connected
	done      chan struct{} // closed when the session ended (err holds why)
	stopped   chan struct{} // closed when run returned
	errOnce   sync.Once
	err       error

	cmds      chan command
	pcNotify  chan struct{}
	localCand chan webrtc.ICECandidateInit
	candDrops atomic.Int64
	// remoteDrops counts remote candidates over maxRemoteCandidates (set
	// by run, read by Close).
	remoteDrops atomic.Int64

	subs     []sensors.Subscription
	counters mediaCounters
	started  time.Time

	running   atomic.Bool // run was started (so cmdStop will be answered)
	closeOnce sync.Once
}

// dial sets up one session presenting token.
func (l *Link) dial(ctx context.Context, tc *tls.Config, token string) (_ *session, err error) {
	cfg := l.cfg
	cfg.Token = token
	wsURL, ice, sessionID := cfg.URL, iceServers(cfg.ICEServers), ""
	if cfg.APIURL != "" {
		rs, err := createSession(ctx, &cfg, tc, l.waits)
		if err != nil {
			return nil, err
		}
		wsURL, sessionID = rs.WSEndpoint, rs.SessionID
		if len(rs.ICECredentials.ICEServers) > 0 {
			ice = rs.ICECredentials.ICEServers
		}
	}

	sctx, cancel := context.WithCancel(context.Background())
	s := &session{
		l: l, log: l.log, ctx: sctx, cancel: cancel,
		connected: make(chan struct{}), up: make(chan struct{}), done: make(chan struct{}),
		stopped: make(chan struct{}), cmds: make(chan command, 4), pcNotify: make(chan struct{}, 1),
		localCand: make(chan webrtc.ICECandidateInit, 64), started: time.Now(),
	}
	s.counters.stats = l.deps.Stats
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	vsub, err := l.deps.Hub.Subscribe(cfg.Video, sensors.SubscribeOptions{Queue: 30, Policy: sensors.DropOldest, Label: l.deps.Name})
	if err != nil {
		return s, classifySubscribe("video", cfg.Video, err)
	}
	s.subs = append(s.subs, vsub)
	var asub sensors.Subscription
	if cfg.Audio != "" {
		asub, err = l.deps.Hub.Subscribe(cfg.Audio, sensors.SubscribeOptions{Queue: 50, Policy: sensors.DropOldest, Label: l.deps.Name})
		if err != nil {
			return s, classifySubscribe("audio", cfg.Audio, err)
		}
		s.subs = append(s.subs, asub)
	}

	pm, err := s.setupPeer(ice, l.opts.Loopback || isLoopbackURL(wsURL), asub != nil)
	if err != nil {
		return s, err
	}

	s.sig, err = dialSignal(ctx, &cfg, wsURL, tc, l.deps.Stats, l.opts.FirstPingTimeout, l.waits)
	if err != nil {
		return s, err
	}
	if sessionID != "" {
		s.sig.setSessionID(sessionID)
	}
	s.sig.start(func(raw []byte) {
		// The ping's shape is not documented (spec §3): show it once per link.
		if l.pingLogged.CompareAndSwap(false, true) {
			s.log.Info("rtm first ping from the service", "frame", l.peer(string(raw)))
		}
	})

	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		return s, retry.Permanent(fmt.Errorf("rtm create offer: %w", err))
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return s, fmt.Errorf("rtm set local description: %w", err)
	}
	ld := s.pc.LocalDescription()
	if err := s.sig.send(TypeSessionStart, SDPData{SDP: ld, WebhookURL: cfg.WebhookURL, Version: l.deps.Version}); err != nil {
		return s, err
	}
	l.deps.Stats.SetDetail("session", StateInit)

	s.running.Store(true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.stopped)
		s.run()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		rtcpReader(pm.vtr.Sender(), pm.keyReq, &s.counters)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		videoPump(s.ctx, s.connected, vsub, pm.vtrack, pm.keyReq, &s.counters, s.log)
	}()
	if pm.atr != nil {
		s.wg.Add(2)
		go func() {
			defer s.wg.Done()
			rtcpReader(pm.atr.Sender(), nil, &s.counters)
		}()
		go func() {
			defer s.wg.Done()
			audioPump(s.ctx, s.connected, asub, pm.atrack, &s.counters)
		}()
	}

	setup := time.NewTimer(l.opts.SetupTimeout)
	defer setup.Stop()
	select {
	case <-s.up:
		l.setCurrent(s)
		l.log.Info("rtm session up", "session", *s.sig.sessionID.Load(), "setup", time.Since(s.started).Round(time.Millisecond))
		return s, nil
	case <-s.done:
		return s, s.err
	case <-ctx.Done():
		return s, ctx.Err()
	case <-setup.C:
		return s, fmt.Errorf("rtm setup: not ACTIVE and connected after %v", l.opts.SetupTimeout)
	}
}

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
			s.log.Info("rtm session ended", "err", err, "after", time.Since(s.started).Round(time.Millisecond))
		}
	})
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

// Close ends the session in the spec's order: recording_stop (if
// recording), session_stop, a bounded wait for TERMINATED, then the peer
// connection and the socket. Safe to call more than once and after Serve.
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
				t := time.NewTimer(s.l.opts.StopWait + time.Second)
				select {
				case <-s.done:
				case <-t.C:
				}
				t.Stop()
			}
		}
	}
	s.finish(errClosed)
	s.cancel()
	if s.pc != nil {
		_ = s.pc.Close() // ends the RTCP readers
	}
	if s.sig != nil {
		s.sig.close()
	}
	for _, sub := range s.subs {
		sub.Close() // closes C: the pumps return
	}
	s.wg.Wait()
	s.l.deps.Stats.SetDetail("session", StateTerminated)
	s.log.Debug("rtm session closed", "video_frames", s.counters.videoFrames.Load(),
		"audio_packets", s.counters.audioPackets.Load(), "keyframe_requests", s.counters.keyRequests.Load(),
		"candidates_dropped", s.candDrops.Load(),
		"remote_candidates_dropped", s.remoteDrops.Load(), "pongs_dropped", s.sig.pongsDroppedOrZero())
}

func (g *signal) pongsDroppedOrZero() int64 {
	if g == nil {
		return 0
	}
	return g.pongsDropped.Load()
}
