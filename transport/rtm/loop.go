package rtm

import (
	"errors"
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/retry"
)

// maxPendingCandidates bounds remote candidates buffered before the answer.
const maxPendingCandidates = 64

// loopState is owned by run.
type loopState struct {
	active      bool // session_state ACTIVE seen
	isConnected bool
	isUp        bool
	recording   bool // recording_start sent and not stopped/failed
	stopping    bool
	pending     []webrtc.ICECandidateInit
	pendDrops   int
	discTimer   *time.Timer
	discC       <-chan time.Time
	stopTimer   <-chan time.Time
	lastState   string
	seen        map[string]bool // log-once keys
}

// run is the session's event loop: messages from the service, peer
// connection state changes, local candidates and commands. It returns when
// the session ended (done is closed).
func (s *session) run() {
	st := &loopState{}
	defer func() {
		if st.discTimer != nil {
			st.discTimer.Stop()
		}
	}()
	for {
		select {
		case <-s.done:
			return
		case <-s.ctx.Done():
			s.finish(s.ctx.Err())
			return
		case <-s.sig.Done():
			// Messages read before the socket ended (a TERMINATED with its
			// cause, typically) say more than the socket error.
			for {
				select {
				case m := <-s.sig.In():
					if err := s.handle(st, m); err != nil {
						s.finish(err)
						return
					}
					continue
				default:
				}
				break
			}
			err := s.sig.Err()
			if st.stopping {
				err = nil
			}
			s.finish(err)
			return
		case m := <-s.sig.In():
			if err := s.handle(st, m); err != nil {
				s.finish(err)
				return
			}
		case c := <-s.localCand:
			if err := s.sig.send(TypeCandidate, CandidateData{Candidate: &c}); err != nil {
				s.finish(err)
				return
			}
		case <-s.pcNotify:
			if err := s.onPCState(st); err != nil {
				s.finish(err)
				return
			}
		case <-st.discC:
			if s.pc.ConnectionState() == webrtc.PeerConnectionStateDisconnected {
				s.finish(fmt.Errorf("rtm peer connection: disconnected for %v", s.l.opts.DisconnectedGrace))
				return
			}
		case c := <-s.cmds:
			if err := s.onCommand(st, c); err != nil {
				s.finish(err)
				return
			}
		case <-st.stopTimer:
			s.log.Info("rtm no TERMINATED after session_stop; closing", "waited", s.l.opts.StopWait)
			s.finish(nil)
			return
		}
	}
}

func (s *session) handle(st *loopState, m Message) error {
	if m.SessionID != "" && *s.sig.sessionID.Load() == "" {
		s.sig.setSessionID(m.SessionID)
	}
	switch m.Type {
	case TypeSDPUpdate:
		sd, err := m.SDP()
		if err != nil {
			// Without a usable description the session cannot go on.
			return retry.RetryAfter(err, s.l.opts.SDPErrorWait)
		}
		return s.onSDP(st, sd)
	case TypeCandidate:
		c, err := m.Candidate()
		if err != nil {
			s.badMessage(st, m, err)
			return nil
		}
		if s.pc.RemoteDescription() == nil {
			if len(st.pending) >= maxPendingCandidates {
				st.pendDrops++
				return nil
			}
			st.pending = append(st.pending, c)
			return nil
		}
		if err := s.pc.AddICECandidate(c); err != nil {
			s.log.Debug("rtm remote candidate rejected", "err", err)
		}
		return nil
	case TypeSessionState:
		d, err := m.SessionState()
		if err != nil {
			s.badMessage(st, m, err)
			return nil
		}
		return s.onSessionState(st, d)
	case TypeRecordingState:
		d, err := m.RecordingState()
		if err != nil {
			s.badMessage(st, m, err)
			return nil
		}
		s.l.deps.Stats.SetDetail("recording", d.State)
		switch d.State {
		case RecordingStarted:
			s.log.Info("rtm recording started", "recording_id", d.RecordingID)
		case RecordingStopped:
			st.recording = false
			s.log.Info("rtm recording stopped", "recording_id", d.RecordingID)
		case RecordingFailed:
			st.recording = false
			s.log.Warn("rtm recording failed", "recording_id", d.RecordingID)
		}
		return nil
	default:
		if !st.logged(m.Type) {
			s.log.Info("rtm message type not handled; ignored", "type", m.Type)
		}
		return nil
	}
}

// badMessage logs a malformed message once per type and session and drops
// it: one broken field must not cost the stream.
func (s *session) badMessage(st *loopState, m Message, err error) {
	if !st.logged("bad:" + m.Type) {
		s.log.Warn("rtm malformed message ignored", "type", m.Type, "err", err)
	}
}

// logged reports whether key was logged before in this session, and marks it.
func (st *loopState) logged(key string) bool {
	if st.seen == nil {
		st.seen = map[string]bool{}
	}
	if st.seen[key] {
		return true
	}
	st.seen[key] = true
	return false
}

// onSDP applies an answer, or answers a server-side offer (renegotiation),
// then flushes the candidates buffered before the remote description.
func (s *session) onSDP(st *loopState, sd webrtc.SessionDescription) error {
	if err := s.pc.SetRemoteDescription(sd); err != nil {
		return retry.RetryAfter(fmt.Errorf("rtm apply %s: %w", sd.Type, err), s.l.opts.SDPErrorWait)
	}
	if sd.Type == webrtc.SDPTypeOffer {
		ans, err := s.pc.CreateAnswer(nil)
		if err != nil {
			return retry.RetryAfter(fmt.Errorf("rtm answer renegotiation: %w", err), s.l.opts.SDPErrorWait)
		}
		if err := s.pc.SetLocalDescription(ans); err != nil {
			return fmt.Errorf("rtm set local answer: %w", err)
		}
		if err := s.sig.send(TypeSDPUpdate, SDPData{SDP: s.pc.LocalDescription()}); err != nil {
			return err
		}
	}
	for _, c := range st.pending {
		if err := s.pc.AddICECandidate(c); err != nil {
			s.log.Debug("rtm buffered remote candidate rejected", "err", err)
		}
	}
	if st.pendDrops > 0 {
		s.log.Warn("rtm remote candidates dropped before the answer", "dropped", st.pendDrops)
	}
	st.pending, st.pendDrops = nil, 0
	return nil
}

func (s *session) onSessionState(st *loopState, d SessionStateData) error {
	if d.State != st.lastState {
		s.log.Info("rtm session state", "state", d.State, "termination_cause", d.TerminationCause)
		st.lastState = d.State
	}
	s.l.deps.Stats.SetDetail("session", d.State)
	switch d.State {
	case StateActive:
		st.active = true
		s.l.twoTimers.Store(0)
		s.checkUp(st)
	case StateTerminated:
		if st.stopping && (d.TerminationCause == CauseTermByClient || d.TerminationCause == "") {
			return errStopped
		}
		return s.terminated(d.TerminationCause)
	}
	return nil
}

// errStopped ends a session that we stopped ourselves.
var errStopped = errors.New("rtm session stopped by the agent")

// terminated applies the per-cause policy of spec §4.
func (s *session) terminated(cause string) error {
	err := &TerminatedError{Cause: cause}
	switch cause {
	case CauseTwoTimer:
		// The old session is still in SHUTDOWN: wait longer, growing.
		n := s.l.twoTimers.Add(1)
		wait := s.l.opts.TwoTimerWait << min(n-1, 6)
		return retry.RetryAfter(err, min(wait, max(60*time.Second, s.l.opts.TwoTimerWait)))
	case CauseSDPError:
		s.log.Error("rtm service rejected the SDP; check the codecs (H.264 42e01f, PCMU)", "retry_in", s.l.opts.SDPErrorWait)
		return retry.RetryAfter(err, s.l.opts.SDPErrorWait)
	case CauseNoPacketReceived:
		last := s.counters.lastVideoUnix.Load()
		if last == 0 || time.Since(time.Unix(0, last)) > 5*time.Second {
			s.log.Warn("rtm service got no packets and the video source is silent", "video", s.l.cfg.Video)
		} else {
			s.log.Warn("rtm service got no packets although the video source runs", "video_frames_sent", s.counters.videoFrames.Load())
		}
	case CauseMaxSupervisors, CauseNoActiveAgent, CauseAgentSessionTerm:
		s.log.Warn("rtm supervisor-only termination cause for an agent session", "cause", cause)
	}
	return err
}

func (s *session) onPCState(st *loopState) error {
	state := s.pc.ConnectionState()
	switch state {
	case webrtc.PeerConnectionStateConnected:
		if st.discTimer != nil {
			st.discTimer.Stop()
			st.discC = nil
		}
		if !st.isConnected {
			st.isConnected = true
			close(s.connected)
			s.log.Debug("rtm peer connected", "after", time.Since(s.started).Round(time.Millisecond))
		}
		s.checkUp(st)
	case webrtc.PeerConnectionStateDisconnected:
		if st.discTimer == nil {
			st.discTimer = time.NewTimer(s.l.opts.DisconnectedGrace)
		} else {
			st.discTimer.Reset(s.l.opts.DisconnectedGrace)
		}
		st.discC = st.discTimer.C
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		return fmt.Errorf("rtm peer connection %s", state)
	}
	return nil
}

// checkUp marks the session up once ACTIVE and connected, and starts the
// recording if one is wanted.
func (s *session) checkUp(st *loopState) {
	if st.isUp || !st.active || !st.isConnected {
		return
	}
	st.isUp = true
	close(s.up)
	if s.l.wantRecord.Load() {
		s.startRecording(st)
	}
}

func (s *session) startRecording(st *loopState) {
	if st.recording {
		return
	}
	if s.l.cfg.Record.UploadURL == "" {
		if s.l.noUploadLogged.CompareAndSwap(false, true) {
			s.log.Warn("rtm recording wanted but record.upload_url is empty; streaming without recording")
		}
		return
	}
	if err := s.sig.send(TypeRecordingStart, RecordingStartData{UploadURL: s.l.cfg.Record.UploadURL, WebhookURL: s.l.cfg.Record.WebhookURL}); err != nil {
		return // the socket failed: run sees it
	}
	st.recording = true
}

func (s *session) onCommand(st *loopState, c command) error {
	switch c {
	case cmdRecordStart:
		if st.isUp {
			s.startRecording(st)
		}
	case cmdRecordStop:
		if st.recording {
			st.recording = false
			return s.sig.send(TypeRecordingStop, struct{}{})
		}
	case cmdStop:
		if st.stopping {
			return nil
		}
		st.stopping = true
		if st.recording {
			_ = s.sig.send(TypeRecordingStop, struct{}{})
		}
		if err := s.sig.send(TypeSessionStop, struct{}{}); err != nil {
			return nil // socket already gone: nothing to wait for
		}
		t := time.NewTimer(s.l.opts.StopWait)
		st.stopTimer = t.C
	}
	return nil
}
