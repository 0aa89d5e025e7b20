package rtmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264writer"

	"github.com/edge-agent/edge-agent/transport/rtm"
)

// SessionInfo is what one session saw. Durations are measured from the
// moment session_start arrived (zero: not reached).
type SessionInfo struct {
	ID           string        `json:"id"`
	ClientID     string        `json:"client_id"`
	Started      time.Time     `json:"started"`
	States       []string      `json:"states"` // session_state values sent
	Connected    time.Duration `json:"connected"`
	FirstAudio   time.Duration `json:"first_audio"`
	FirstVideo   time.Duration `json:"first_video"` // first RTP of a keyframe
	VideoPackets int64         `json:"video_packets"`
	VideoFrames  int64         `json:"video_frames"` // RTP marker bits
	AudioPackets int64         `json:"audio_packets"`
	AudioBytes   int64         `json:"audio_bytes"`
	Pings        int64         `json:"pings"`
	Pongs        int64         `json:"pongs"`
	Recordings   []Recording   `json:"recordings"`
	Cause        string        `json:"cause,omitempty"` // termination_cause sent
	Ended        bool          `json:"ended"`
	Received     []string      `json:"received"` // message types from the agent, in order
	// VideoFmtp is the fmtp line of the H.264 format the offer announced
	// (the first, when it named several).
	VideoFmtp string `json:"video_fmtp,omitempty"`
	// StreamProfileLevelID is the profile-level-id of the latest SPS that
	// arrived over RTP: what the stream really is.
	StreamProfileLevelID string `json:"stream_profile_level_id,omitempty"`
	// MediaErrors are what a browser would refuse: an offer of no H.264
	// profile it decodes (the session then ends with SDP_ERROR), an SPS
	// whose profile is not the announced one or whose level is above it, an
	// SPS that does not parse. Each distinct error once.
	MediaErrors []string `json:"media_errors,omitempty"`
}

// Recording is one recording of a session.
type Recording struct {
	ID        string   `json:"id"`
	UploadURL string   `json:"upload_url"`
	States    []string `json:"states"` // recording_state values reported
	Status    []int    `json:"status"` // HTTP status of each PUT
}

// fakeSession is one WebSocket connection. handle (the HTTP handler's
// goroutine) reads; writes go through wmu; the pinger and the RTP readers
// are tracked by wg and end when the connection ends.
type fakeSession struct {
	srv  *Server
	log  *slog.Logger
	conn *websocket.Conn
	wmu  sync.Mutex

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex // guards everything below
	info_     SessionInfo
	pc        *webrtc.PeerConnection
	pending   []webrtc.ICECandidateInit
	rec       *recorder
	ended     bool
	lastPong  time.Time
	videoSSRC uint32
	offered   map[uint8]string // the offer's H.264 formats: payload type → fmtp line
}

// recorder writes the received media to two files while a recording runs.
type recorder struct {
	id        string
	uploadURL string
	video     *os.File
	h264      *h264writer.H264Writer
	audio     *os.File
	index     int // into info_.Recordings
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	conn, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn.SetReadLimit(rtm.MaxMessageSize)
	ctx, cancel := context.WithCancel(s.ctx)
	fs := &fakeSession{srv: s, conn: conn, ctx: ctx, cancel: cancel, log: s.log, lastPong: time.Now()}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		cancel()
		return
	}
	s.sessions = append(s.sessions, fs)
	s.wg.Add(1) // the handler itself: Close waits for it
	s.mu.Unlock()
	defer s.wg.Done()
	fs.serve()
}

func (fs *fakeSession) serve() {
	defer func() {
		fs.end("")
		fs.cancel()
		fs.wg.Wait()
	}()
	fs.wg.Add(1)
	go fs.pinger()
	for {
		_, b, err := fs.conn.ReadMessage()
		if err != nil {
			return
		}
		m, err := rtm.DecodeMessage(b)
		if err != nil {
			fs.log.Warn("rtm fake: bad message from agent", "err", err)
			return
		}
		fs.mu.Lock()
		fs.info_.Received = append(fs.info_.Received, m.Type)
		if fs.info_.ClientID == "" {
			fs.info_.ClientID = m.ClientID
		}
		fs.mu.Unlock()
		if !fs.handle(m) {
			return
		}
	}
}

// handle processes one message; false ends the connection.
func (fs *fakeSession) handle(m rtm.Message) bool {
	switch m.Type {
	case rtm.TypeSessionStart:
		return fs.onStart(m)
	case rtm.TypeCandidate:
		c, err := m.Candidate()
		if err != nil {
			fs.log.Warn("rtm fake: bad candidate", "err", err)
			return true
		}
		fs.mu.Lock()
		pc := fs.pc
		if pc == nil || pc.RemoteDescription() == nil {
			fs.pending = append(fs.pending, c)
			fs.mu.Unlock()
			return true
		}
		fs.mu.Unlock()
		_ = pc.AddICECandidate(c)
	case rtm.TypeSDPUpdate:
		sd, err := m.SDP()
		fs.mu.Lock()
		pc := fs.pc
		fs.mu.Unlock()
		if err != nil || pc == nil || sd.Type != webrtc.SDPTypeAnswer {
			fs.terminate(rtm.CauseSDPError)
			return false
		}
		if err := pc.SetRemoteDescription(sd); err != nil {
			fs.terminate(rtm.CauseSDPError)
			return false
		}
	case rtm.TypePong:
		fs.mu.Lock()
		fs.info_.Pongs++
		fs.lastPong = time.Now()
		fs.mu.Unlock()
	case rtm.TypeRecordingStart:
		d, err := m.RecordingStart()
		if err != nil {
			fs.log.Warn("rtm fake: bad recording_start", "err", err)
			fs.sendRecState("", rtm.RecordingFailed)
			return true
		}
		fs.startRecording(d)
	case rtm.TypeRecordingStop:
		fs.stopRecording(true)
	case rtm.TypeSessionStop:
		fs.sendState(rtm.StateShutdown, "")
		fs.stopRecording(true)
		fs.terminate(rtm.CauseTermByClient)
		return false
	default:
		fs.log.Info("rtm fake: unknown message", "type", m.Type)
	}
	return true
}

func (fs *fakeSession) renegotiate() {
	fs.mu.Lock()
	pc := fs.pc
	fs.mu.Unlock()
	if pc == nil {
		return
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		fs.log.Warn("rtm fake: renegotiation offer failed", "err", err)
		return
	}
	fs.send(rtm.TypeSDPUpdate, rtm.SDPData{SDP: pc.LocalDescription()})
}

func (fs *fakeSession) onStart(m rtm.Message) bool {
	offer, err := m.SDP()
	fs.mu.Lock()
	fs.info_.Started = time.Now()
	if fs.info_.ID == "" {
		fs.info_.ID = m.SessionID
	}
	if fs.info_.ID == "" {
		fs.info_.ID = "sess-" + randomHex(6)
	}
	fs.mu.Unlock()
	fs.log.Info("rtm fake: session_start", "client_id", m.ClientID, "session", fs.id())
	if err != nil || offer.Type != webrtc.SDPTypeOffer || fs.srv.rejectSDP.Load() {
		fs.terminate(rtm.CauseSDPError)
		return false
	}
	if !fs.checkOffer(offer.SDP) {
		fs.terminate(rtm.CauseSDPError)
		return false
	}
	fs.sendState(rtm.StateSetup, "")
	pc, err := fs.srv.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		fs.terminate(rtm.CauseConnError)
		return false
	}
	fs.mu.Lock()
	fs.pc = pc
	fs.mu.Unlock()
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		j := c.ToJSON()
		fs.send(rtm.TypeCandidate, rtm.CandidateData{Candidate: &j})
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			fs.mu.Lock()
			if fs.info_.Connected == 0 {
				fs.info_.Connected = time.Since(fs.info_.Started)
			}
			fs.mu.Unlock()
			fs.sendState(rtm.StateActive, "")
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected:
			// Like the real service, a transient "disconnected" ends the
			// session. Not from pion's callback goroutine: Close waits for it.
			if fs.track() {
				go func() {
					defer fs.wg.Done()
					fs.terminate(rtm.CausePeerConnFailed)
				}()
			}
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if !fs.track() {
			return
		}
		defer fs.wg.Done()
		fs.readTrack(tr)
	})
	if err := pc.SetRemoteDescription(offer); err != nil {
		fs.terminate(rtm.CauseSDPError)
		return false
	}
	ans, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(ans)
	}
	if err != nil {
		fs.terminate(rtm.CauseSDPError)
		return false
	}
	fs.send(rtm.TypeSDPUpdate, rtm.SDPData{SDP: pc.LocalDescription()})
	fs.mu.Lock()
	pend := fs.pending
	fs.pending = nil
	fs.mu.Unlock()
	for _, c := range pend {
		_ = pc.AddICECandidate(c)
	}
	return true
}

// track registers an RTP reader with wg unless the session already ended
// (wg.Add after Wait would race).
func (fs *fakeSession) track() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.ended {
		return false
	}
	fs.wg.Add(1)
	return true
}

func (fs *fakeSession) readTrack(tr *webrtc.TrackRemote) {
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	if video {
		fs.mu.Lock()
		fs.videoSSRC = uint32(tr.SSRC())
		fs.mu.Unlock()
	}
	var lastSPS []byte
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if sps := spsIn(p.Payload); video && sps != nil && !bytes.Equal(sps, lastSPS) {
			lastSPS = append(lastSPS[:0], sps...)
			fs.checkSPS(p.PayloadType, sps)
		}
		fs.mu.Lock()
		since := time.Since(fs.info_.Started)
		if video {
			fs.info_.VideoPackets++
			if p.Marker {
				fs.info_.VideoFrames++
			}
			if fs.info_.FirstVideo == 0 && isKeyframeStart(p.Payload) {
				fs.info_.FirstVideo = since
			}
			if fs.rec != nil {
				_ = fs.rec.h264.WriteRTP(p)
			}
		} else {
			fs.info_.AudioPackets++
			fs.info_.AudioBytes += int64(len(p.Payload))
			if fs.info_.FirstAudio == 0 {
				fs.info_.FirstAudio = since
			}
			if fs.rec != nil {
				_, _ = fs.rec.audio.Write(p.Payload)
			}
		}
		fs.mu.Unlock()
	}
}

// isKeyframeStart reports whether an H.264 RTP payload starts an access
// unit with SPS (STAP-A with SPS first, or a bare SPS).
func isKeyframeStart(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	switch b[0] & 0x1f {
	case 7:
		return true
	case 24:
		return len(b) > 3 && b[3]&0x1f == 7
	}
	return false
}

func (fs *fakeSession) pinger() {
	defer fs.wg.Done()
	iv := fs.srv.opts.PingInterval
	t := time.NewTicker(iv)
	defer t.Stop()
	logT := time.NewTicker(fs.srv.opts.LogEvery)
	defer logT.Stop()
	var n int64
	for {
		select {
		case <-fs.ctx.Done():
			return
		case <-logT.C:
			in := fs.info()
			if in.Started.IsZero() {
				continue
			}
			fs.log.Info("rtm fake: receiving", "session", in.ID, "video_frames", in.VideoFrames,
				"audio_packets", in.AudioPackets, "recording", fs.recording())
		case <-t.C:
			if fs.srv.silent.Load() {
				fs.mu.Lock()
				fs.lastPong = time.Now() // silence is our fault, not the agent's
				fs.mu.Unlock()
				continue
			}
			fs.mu.Lock()
			late := time.Since(fs.lastPong) > max(3*iv+iv/2, time.Second)
			fs.mu.Unlock()
			if late {
				fs.log.Info("rtm fake: no pong; terminating", "session", fs.id())
				fs.terminate(rtm.CauseConnTimeout)
				return
			}
			n++
			fs.send(rtm.TypePing, map[string]any{"seq": n})
			fs.mu.Lock()
			fs.info_.Pings++
			fs.mu.Unlock()
		}
	}
}

func (fs *fakeSession) id() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.info_.ID
}

func (fs *fakeSession) recording() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.rec != nil
}

func (fs *fakeSession) isEnded() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.ended
}

func (fs *fakeSession) info() SessionInfo {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	in := fs.info_
	in.States = append([]string(nil), in.States...)
	in.Received = append([]string(nil), in.Received...)
	in.MediaErrors = append([]string(nil), in.MediaErrors...)
	in.Recordings = make([]Recording, len(fs.info_.Recordings))
	for i, r := range fs.info_.Recordings {
		r.States = append([]string(nil), r.States...)
		r.Status = append([]int(nil), r.Status...)
		in.Recordings[i] = r
	}
	return in
}

// send writes one message unless the server is silent. Errors end the
// connection through the reader.
func (fs *fakeSession) send(typ string, data any) {
	if fs.srv.silent.Load() {
		return
	}
	m, err := rtm.NewMessage(typ, "", fs.id(), data)
	if err != nil {
		return
	}
	b, _ := json.Marshal(m)
	fs.writeRaw(b)
}

func (fs *fakeSession) writeRaw(b []byte) {
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	_ = fs.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = fs.conn.WriteMessage(websocket.TextMessage, b)
}

func (fs *fakeSession) sendState(state, cause string) {
	fs.mu.Lock()
	fs.info_.States = append(fs.info_.States, state)
	if cause != "" {
		fs.info_.Cause = cause
	}
	fs.mu.Unlock()
	fs.log.Info("rtm fake: session_state", "session", fs.id(), "state", state, "termination_cause", cause)
	fs.send(rtm.TypeSessionState, rtm.SessionStateData{State: state, TerminationCause: cause})
}

func (fs *fakeSession) sendRecState(id, state string) {
	fs.log.Info("rtm fake: recording_state", "session", fs.id(), "recording_id", id, "state", state)
	fs.send(rtm.TypeRecordingState, rtm.RecordingStateData{RecordingID: id, State: state})
}

// terminate sends TERMINATED (once) and closes the connection.
func (fs *fakeSession) terminate(cause string) {
	fs.mu.Lock()
	done := fs.ended || fs.info_.Cause != ""
	fs.mu.Unlock()
	if !done {
		fs.sendState(rtm.StateTerminated, cause)
	}
	fs.end(cause)
}

// end closes the session once: the peer connection, the socket, and a
// recording in progress is still finished and uploaded
// (docs/protocols/webrtc-rtm.md §3.2).
func (fs *fakeSession) end(cause string) {
	fs.mu.Lock()
	if fs.ended {
		fs.mu.Unlock()
		return
	}
	if fs.rec != nil {
		rec := fs.rec
		fs.rec = nil
		fs.mu.Unlock()
		fs.finishRecording(rec, false)
		fs.mu.Lock()
	}
	fs.ended = true
	fs.info_.Ended = true
	if cause != "" && fs.info_.Cause == "" {
		fs.info_.Cause = cause
	}
	pc := fs.pc
	// Server.sessions keeps every session's SessionInfo for Sessions(); drop
	// the ~150 KiB peer connection and queued candidates so a fake left
	// running (edge-agent sim/demo) with a flapping link does not grow.
	fs.pc, fs.pending = nil, nil
	fs.mu.Unlock()
	fs.conn.Close()
	if pc != nil {
		_ = pc.Close()
	}
	fs.cancel()
}

func (fs *fakeSession) startRecording(d rtm.RecordingStartData) {
	if _, err := url.Parse(d.UploadURL); err != nil {
		fs.sendRecState("", rtm.RecordingFailed)
		return
	}
	fs.mu.Lock()
	if fs.rec != nil || fs.ended {
		fs.mu.Unlock()
		return
	}
	id := "rec-" + randomHex(6)
	dir := filepath.Join(fs.srv.dir, "recordings")
	var rec *recorder
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		var v, a *os.File
		v, err = os.OpenFile(filepath.Join(dir, id+".h264"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
		if err == nil {
			a, err = os.OpenFile(filepath.Join(dir, id+".ulaw"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
			if err != nil {
				v.Close()
			}
		}
		if err == nil {
			rec = &recorder{id: id, uploadURL: d.UploadURL, video: v, audio: a, h264: h264writer.NewWith(v),
				index: len(fs.info_.Recordings)}
		}
	}
	if err != nil {
		fs.mu.Unlock()
		fs.log.Warn("rtm fake: cannot record", "err", err)
		fs.sendRecState(id, rtm.RecordingFailed)
		return
	}
	fs.rec = rec
	fs.info_.Recordings = append(fs.info_.Recordings, Recording{ID: id, UploadURL: d.UploadURL, States: []string{rtm.RecordingStarted}})
	pc, ssrc := fs.pc, fs.videoSSRC
	fs.mu.Unlock()
	fs.sendRecState(id, rtm.RecordingStarted)
	// Ask for a keyframe so the recording starts decodable soon.
	if pc != nil && ssrc != 0 {
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
}

// stopRecording finishes the current recording; report says whether the
// agent can still be told (recording_stop) or not (socket gone).
func (fs *fakeSession) stopRecording(report bool) {
	fs.mu.Lock()
	rec := fs.rec
	fs.rec = nil
	fs.mu.Unlock()
	if rec != nil {
		fs.finishRecording(rec, report)
	}
}

// finishRecording closes the files, PUTs them to the upload URL (video at
// upload_url; audio, when any arrived, at upload_url with ?track=audio) and
// reports recording_state.
func (fs *fakeSession) finishRecording(rec *recorder, report bool) {
	state := rtm.RecordingStopped
	var codes []int
	put := func(u string, f *os.File, ctype string) {
		if _, err := f.Seek(0, 0); err != nil {
			codes = append(codes, 0)
			state = rtm.RecordingFailed
			return
		}
		code, err := fs.srv.put(u, f, ctype)
		codes = append(codes, code)
		if err != nil || code != http.StatusOK {
			fs.log.Warn("rtm fake: upload failed", "status", code, "err", err)
			state = rtm.RecordingFailed
		}
	}
	put(rec.uploadURL, rec.video, "video/h264")
	if fi, err := rec.audio.Stat(); err == nil && fi.Size() > 0 {
		put(withQuery(rec.uploadURL, "track", "audio"), rec.audio, "audio/basic")
	}
	rec.video.Close()
	rec.audio.Close()
	fs.mu.Lock()
	r := &fs.info_.Recordings[rec.index]
	r.States = append(r.States, state)
	r.Status = codes
	fs.mu.Unlock()
	if report {
		fs.sendRecState(rec.id, state)
	} else {
		fs.log.Info("rtm fake: recording finished after the session ended", "recording_id", rec.id, "state", state)
	}
}

func withQuery(raw, k, v string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Server) put(u string, f *os.File, ctype string) (int, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, f)
	if err != nil {
		return 0, err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", ctype)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("put: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
