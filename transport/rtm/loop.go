package rtm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// maxRemoteCandidates bounds the distinct remote candidates one session
// accepts, buffered before the answer and applied after it alike. Each one
// costs pion a goroutine, a linear duplicate scan and a pair per local
// candidate: 20 000 after the answer cost 40 s of CPU, ~15 000 goroutines and
// 130 MiB. A real service sends a handful.
const maxRemoteCandidates = 64

// maxCandidateLen bounds one candidate line (a real one is under 200 bytes),
// so the duplicate set stays small.
const maxCandidateLen = 1024

// Bounds of the log-once set: a peer may send any number of distinct
// message types, each up to MaxMessageSize.
const (
	maxLoggedKeys = 32
	maxLoggedType = 64
)

// loopState is owned by run.
type loopState struct {
	active      bool // session_state ACTIVE seen
	isConnected bool
	isUp        bool
	recording   bool // recording_start sent and not stopped/failed
	stopping    bool
	remote      map[candidateKey]struct{} // every remote candidate accepted (pending or applied)
	remoteDrops int                       // candidates over maxRemoteCandidates
	disc        *clock.Timer              // DisconnectedGrace since ICE went "disconnected"
	stop        *clock.Timer              // StopWait since session_stop
	lastState   string
	seen        map[string]bool // log-once keys, at most maxLoggedKeys
}

// candidateKey identifies a remote candidate for the duplicate check.
type candidateKey struct {
	line  string
	mid   string
	index uint16
}

// run is the session's event loop: messages from the service, peer
// connection state changes, local candidates and commands. It returns when
// the session ended (done is closed).
func (s *session) run() {
	st := &loopState{}
	defer func() {
		st.disc.Stop()
		st.stop.Stop()
	}()
	for {
		select {
		case <-s.done:
			return
		case <-s.ctx.Done():
			s.finish(s.ctx.Err())
			return
		case <-s.sig.Done():
			err := s.drainIn(st)
			if err == nil {
				err = s.sig.Err()
				if st.stopping {
					err = s.stopResult(nil)
				}
			}
			s.finish(err)
			return
		case m := <-s.sig.In():
			if err := s.handle(st, m); err != nil {
				s.finish(err)
				return
			}
		case c := <-s.peer.candidates():
			if err := s.sig.send(TypeCandidate, CandidateData{Candidate: &c}); err != nil {
				s.finish(s.writeFailed(st, err))
				return
			}
		case <-s.peer.stateChanged():
			if err := s.onPCState(st); err != nil {
				if st.stopping { // the peer closing is how a stop ends: keep its reason
					err = s.stopResult(err)
				}
				s.finish(err)
				return
			}
		case <-st.disc.C():
			st.disc.Stop()
			st.disc = nil
			if s.peer.state() == webrtc.PeerConnectionStateDisconnected {
				s.finish(fmt.Errorf("rtm peer connection: disconnected for %v", s.l.opts.DisconnectedGrace))
				return
			}
		case c := <-s.cmds:
			if err := s.onCommand(st, c); err != nil {
				s.finish(err)
				return
			}
		case <-st.stop.C():
			s.log.Info("rtm no TERMINATED after session_stop; closing", "waited", s.l.opts.StopWait)
			s.finish(s.stopResult(nil))
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
		return s.onSDP(sd)
	case TypeCandidate:
		c, err := m.Candidate()
		if err == nil && len(c.Candidate) > maxCandidateLen {
			err = fmt.Errorf("rtm %s: %w: candidate line of %d bytes", m.Type, ErrBadMessage, len(c.Candidate))
		}
		if err != nil {
			s.badMessage(st, m, err)
			return nil
		}
		if s.acceptCandidate(st, c) {
			s.peer.addCandidate(c)
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
		d.RecordingID = s.l.peer(d.RecordingID)
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
			s.log.Info("rtm message type not handled; ignored", "type", s.l.peerType(m.Type))
		}
		return nil
	}
}

// acceptCandidate reports whether a remote candidate is new and within the
// session's cap (O(1): a set of the candidates taken). Duplicates are dropped
// silently; candidates over the cap are counted, shown in /status and logged
// once.
func (s *session) acceptCandidate(st *loopState, c webrtc.ICECandidateInit) bool {
	k := candidateKey{line: c.Candidate}
	if c.SDPMid != nil {
		k.mid = *c.SDPMid
	}
	if c.SDPMLineIndex != nil {
		k.index = *c.SDPMLineIndex
	}
	if _, dup := st.remote[k]; dup {
		return false
	}
	if len(st.remote) >= maxRemoteCandidates {
		st.remoteDrops++
		s.remoteDrops.Store(int64(st.remoteDrops))
		s.l.deps.Stats.SetDetail("remote_candidates_dropped", strconv.Itoa(st.remoteDrops))
		if st.remoteDrops == 1 {
			s.log.Warn("rtm remote candidates over the session's cap dropped", "cap", maxRemoteCandidates)
		}
		return false
	}
	if st.remote == nil {
		st.remote = make(map[candidateKey]struct{}, 8)
	}
	st.remote[k] = struct{}{}
	return true
}

// badMessage logs a malformed message once per type and session and drops
// it: one broken field must not cost the stream.
func (s *session) badMessage(st *loopState, m Message, err error) {
	if !st.logged("bad:" + m.Type) {
		s.log.Warn("rtm malformed message ignored", "type", s.l.peerType(m.Type), "err", err)
	}
}

// logged reports whether key was logged before in this session, and marks
// it. Keys are kept cut to maxLoggedType bytes, and once maxLoggedKeys are
// kept every further key counts as logged: a peer inventing types gets a
// bounded number of log lines and map entries. A kept key is never logged
// or shown (the log line takes peerType), so cutting it unmasked is safe.
func (st *loopState) logged(key string) bool {
	key = clip(key, maxLoggedType+len("bad:"))
	if st.seen[key] {
		return true
	}
	if len(st.seen) >= maxLoggedKeys {
		return true
	}
	if st.seen == nil {
		st.seen = map[string]bool{}
	}
	st.seen[key] = true
	return false
}

// clip cuts s to at most n bytes (on a rune boundary), marking the cut. The
// result does not share s's memory, so a kept key never pins a peer's frame.
func clip(s string, n int) string {
	if len(s) <= n {
		return strings.Clone(s)
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// onSDP applies an answer, or answers a server-side offer (renegotiation).
func (s *session) onSDP(sd webrtc.SessionDescription) error {
	answer, err := s.peer.apply(sd)
	if err != nil || answer == nil {
		return err
	}
	return s.sig.send(TypeSDPUpdate, SDPData{SDP: answer})
}

func (s *session) onSessionState(st *loopState, d SessionStateData) error {
	// Both are logged, shown in /status and kept in the session's error.
	d.State, d.TerminationCause = s.l.peer(d.State), s.l.peer(d.TerminationCause)
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
			return s.stopResult(errStopped)
		}
		return s.terminated(d.TerminationCause)
	}
	return nil
}

// errStopped ends a session that we stopped ourselves.
var errStopped = errors.New("rtm session stopped by the agent")

// terminated applies the per-cause policy of docs/protocols/webrtc-rtm.md
// §4.5.
func (s *session) terminated(cause string) error {
	err := &TerminatedError{Cause: cause}
	switch cause {
	case CauseTwoTimer:
		// The old session is still in SHUTDOWN: wait longer, growing.
		n := s.l.twoTimers.Add(1)
		wait := s.l.opts.TwoTimerWait << min(n-1, 6)
		return retry.RetryAfter(err, min(wait, max(60*time.Second, s.l.opts.TwoTimerWait)))
	case CauseSDPError:
		s.log.Error("rtm service rejected the SDP; check the codecs: the H.264 profile announced (constrained baseline plays everywhere) and PCMU",
			"h264", s.announcedOrNone(), "retry_in", s.l.opts.SDPErrorWait)
		return retry.RetryAfter(err, s.l.opts.SDPErrorWait)
	case CauseNoPacketReceived:
		last := s.counters.lastVideoUnix.Load()
		if last == 0 || s.l.deps.Clock.Now().Sub(time.Unix(0, last)) > 5*time.Second {
			s.log.Warn("rtm service got no packets and the video source is silent", "video", s.l.cfg.Video)
		} else {
			s.log.Warn("rtm service got no packets although the video source runs", "video_frames_sent", s.counters.videoFrames.Load())
		}
	case CauseMaxSupervisors, CauseNoActiveAgent, CauseAgentSessionTerm:
		s.log.Warn("rtm supervisor-only termination cause for an agent session", "cause", cause)
	}
	return err
}

// drainIn handles the messages read before the socket ended: a TERMINATED
// with its cause, typically, says more than the socket error. It returns
// the first error a message gives, nil when none does.
func (s *session) drainIn(st *loopState) error {
	for {
		select {
		case m := <-s.sig.In():
			if err := s.handle(st, m); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// writeFailed is why the session ends after a failed write: the service
// that closes the socket (after a TERMINATED with SDP_ERROR, say) breaks the
// write before the reader has handed on what it sent, so the reader is
// given a moment to finish, and a message it read wins over the write error.
func (s *session) writeFailed(st *loopState, err error) error {
	wait := clock.AfterTimer(s.l.deps.Clock, time.Second)
	defer wait.Stop()
	select {
	case <-s.sig.Done():
	case <-wait.C():
	}
	if merr := s.drainIn(st); merr != nil {
		return merr
	}
	return err
}

func (s *session) onPCState(st *loopState) error {
	state := s.peer.state()
	switch state {
	case webrtc.PeerConnectionStateConnected:
		st.disc.Stop()
		st.disc = nil
		if !st.isConnected {
			st.isConnected = true
			close(s.connected)
			s.log.Debug("rtm peer connected", "after", s.since().Round(time.Millisecond))
		}
		s.checkUp(st)
	case webrtc.PeerConnectionStateDisconnected:
		st.disc.Stop()
		st.disc = clock.AfterTimer(s.l.deps.Clock, s.l.opts.DisconnectedGrace)
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
		st.stop = clock.AfterTimer(s.l.deps.Clock, s.l.opts.StopWait)
	}
	return nil
}
