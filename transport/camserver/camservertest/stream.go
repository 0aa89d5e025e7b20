package camservertest

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/transport/camserver/frame"
)

// ringSize is the server's per-stream frame ring.
const ringSize = 16

// stream is one live input.raw.
type stream struct {
	device, shash, subproto string
	delta                   int64

	mu     sync.Mutex
	ring   [][]byte // last ringSize frames, header included
	seq    uint64   // frames received
	update chan struct{}

	fc      *flowConn // the stream's connection, for Stall
	once    sync.Once
	refused chan struct{}
	wakeCh  chan struct{}
}

func (st *stream) refuse() { st.once.Do(func() { close(st.refused) }) }

func (st *stream) wake() {
	select {
	case st.wakeCh <- struct{}{}:
	default:
	}
}

func (st *stream) push(f []byte) {
	st.mu.Lock()
	if len(st.ring) == ringSize {
		copy(st.ring, st.ring[1:])
		st.ring = st.ring[:ringSize-1]
	}
	st.ring = append(st.ring, f)
	st.seq++
	close(st.update)
	st.update = make(chan struct{})
	st.mu.Unlock()
}

// latest returns the newest frame, its sequence number and a channel closed
// at the next frame.
func (st *stream) latest() ([]byte, uint64, <-chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.ring) == 0 {
		return nil, 0, st.update
	}
	return st.ring[len(st.ring)-1], st.seq, st.update
}

func (s *Server) closeStreams() {
	s.mu.Lock()
	list := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		list = append(list, st)
	}
	s.mu.Unlock()
	for _, st := range list {
		st.refuse()
	}
}

// FrameHook, when set before frames arrive, is called with every frame
// payload received on input.raw (a copy the callee may keep).
func (s *Server) SetFrameHook(h func(device string, payload []byte)) {
	s.mu.Lock()
	s.frameHook = h
	s.mu.Unlock()
}

// inputRaw takes a device's framed stream. It never writes a response: the
// request ends only by a reset (refusal) or the client's cancel.
func (s *Server) inputRaw(_ http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	delta, _ := strconv.ParseInt(q.Get("delta"), 10, 64)
	p := params{query: q}
	s.mu.Lock()
	ss := s.checkLocked(r, q.Get("shash"))
	if ss != nil {
		// Opening counts as one request; the frames do not.
		ss.total--
		ss.perMin--
	}
	if ss == nil {
		s.stats.StreamsRefused++
		s.mu.Unlock()
		s.log.Info("camserver fake: input.raw refused: no such session")
		panic(http.ErrAbortHandler)
	}
	st := &stream{device: ss.device, shash: ss.shash, subproto: p.str("subproto"), delta: delta,
		update: make(chan struct{}), refused: make(chan struct{}), wakeCh: make(chan struct{}, 1)}
	st.fc, _ = r.Context().Value(flowKey{}).(*flowConn)
	if s.stalled[ss.device] && st.fc != nil {
		st.fc.Hold(true)
	}
	if old := s.streams[ss.device]; old != nil {
		old.refuse() // we simplify the real race: the newest registration wins at once
	}
	s.streams[ss.device] = st
	s.stats.StreamsOpened++
	s.mu.Unlock()
	s.log.Info("camserver fake: stream opened", "device", st.device, "subproto", st.subproto, "delta_ms", delta)

	errc := make(chan error, 1)
	go func() { errc <- s.readFrames(st, r.Body) }()
	var err error
	gotErr := false
	select {
	case err = <-errc:
		gotErr = true
	case <-st.refused:
		err = errors.New("stream dropped")
	case <-r.Context().Done():
		err = errors.New("client cancelled the stream")
	}
	_ = r.Body.Close()
	s.mu.Lock()
	if s.streams[st.device] == st {
		delete(s.streams, st.device)
	}
	s.stats.StreamsRefused++
	s.mu.Unlock()
	st.refuse()
	s.log.Info("camserver fake: stream refused", "device", st.device, "why", err)
	if !gotErr {
		<-errc
	}
	panic(http.ErrAbortHandler) // RST_STREAM; the real server says REFUSED_STREAM
}

// readFrames parses the body until it fails. A clean end (END_STREAM) is a
// refusal too.
func (s *Server) readFrames(st *stream, body io.Reader) error {
	d := frame.NewDecoder(body, frame.ServerMaxPayload)
	for {
		s.mu.Lock()
		stalled := s.stalled[st.device]
		s.mu.Unlock()
		if stalled {
			select {
			case <-st.wakeCh:
				continue
			case <-st.refused:
				return errors.New("stream dropped")
			}
		}
		p, err := d.Next()
		if err != nil {
			if err == io.EOF {
				return errors.New("client ended the stream")
			}
			return err
		}
		f, _ := frame.Append(make([]byte, 0, frame.HeaderLen+len(p)), p)
		st.push(f)
		s.mu.Lock()
		s.stats.Frames++
		s.stats.FrameBytes += int64(len(p))
		hook := s.frameHook
		s.mu.Unlock()
		if hook != nil {
			hook(st.device, f[frame.HeaderLen:])
		}
		if st.seq%50 == 1 {
			s.log.Info("camserver fake: frames arriving", "device", st.device, "frames", st.seq, "bytes", len(p))
		}
	}
}

// outputRaw relays a producer's frames to a viewer, byte for byte, at most one
// per max(delta, 400 ms) (ViewerMinGap in Options overrides the floor).
func (s *Server) outputRaw(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := params{query: q}
	s.mu.Lock()
	ss := s.checkLocked(r, q.Get("shash"))
	var st *stream
	dev := p.str("device")
	if ss != nil {
		if n := s.newestLocked(dev); n != nil {
			if cand := s.streams[dev]; cand != nil && cand.shash == n.shash {
				st = cand
			}
		}
	}
	s.mu.Unlock()
	switch {
	case ss == nil:
		s.reply(w, nil, codeNoSuchSession)
		return
	case st == nil:
		s.reply(w, nil, codeNoSuchDevice)
		return
	}
	gap := max(time.Duration(st.delta)*time.Millisecond, s.viewerGap())
	w.Header().Set("Cache-Control", "no-cache")
	var last uint64
	for {
		f, seq, upd := st.latest()
		if seq == last || f == nil {
			select {
			case <-upd:
				continue
			case <-st.refused:
				return
			case <-r.Context().Done():
				return
			}
		}
		last = seq
		if _, err := w.Write(f); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		t := time.NewTimer(gap)
		select {
		case <-t.C:
		case <-st.refused:
			t.Stop()
			return
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
}

func (s *Server) viewerGap() time.Duration {
	if s.opts.ViewerMinGap > 0 {
		return s.opts.ViewerMinGap
	}
	return 400 * time.Millisecond
}
