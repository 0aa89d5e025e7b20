package edgeimpulse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// outQueue bounds the writer's queue. Control messages wait for room;
// snapshot frames are dropped (and counted) when it is full, so a slow uplink
// sheds video instead of growing memory.
const outQueue = 8

// session is one live remote-management connection.
//
// Concurrency: Serve runs three goroutines it owns (reader, writer, pinger)
// plus the session's tasks (one sample at a time, one snapshot stream), and
// waits for all of them before it returns. Only the writer writes data
// frames; pings use WriteControl, which gorilla allows concurrently. The
// reader dispatches messages in order, so Studio's requests are handled in
// the order they were sent.
type session struct {
	l         *Link
	conn      *websocket.Conn
	enc       Encoding
	frameType int

	out chan outMsg
	// tasks are the sample and snapshot goroutines started by the reader.
	tasks    sync.WaitGroup
	sampling atomic.Bool

	mu   sync.Mutex
	snap *snapRun // the running snapshot stream, nil when none

	framesDropped atomic.Uint64
	closeOnce     sync.Once

	mon monitorState // model monitoring (monitor.go)
}

func newSession(l *Link, conn *websocket.Conn) *session {
	s := &session{l: l, conn: conn, enc: l.enc, frameType: websocket.TextMessage, out: make(chan outMsg, outQueue)}
	if s.enc == CBOR {
		s.frameType = websocket.BinaryMessage
	}
	return s
}

// errDeadLink ends a session whose peer stopped answering pings.
var errDeadLink = errors.New("no answer to ping: link dead")

// Serve runs the session until the connection fails, the peer goes silent
// for PingInterval+PongTimeout, or ctx ends (then it returns nil).
func (s *session) Serve(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.conn.Close() }) // unblocks the reader
	defer stop()

	// Socket deadlines are wall time: net.Conn takes time.Now, not the
	// injected clock.
	alive := s.l.cfg.PingInterval.D() + s.l.cfg.PongTimeout.D()
	s.conn.SetReadDeadline(time.Now().Add(alive))
	s.conn.SetPongHandler(func(string) error {
		return s.conn.SetReadDeadline(time.Now().Add(alive))
	})

	errc := make(chan error, 4)
	var wg sync.WaitGroup
	run := func(f func(context.Context) error) {
		wg.Go(func() {
			err := f(ctx)
			errc <- err
			cancel()
		})
	}
	run(s.readLoop)
	run(s.writeLoop)
	run(s.pingLoop)
	if s.l.monitorOf() != nil && !s.mon.announced.Load() {
		run(s.watchModel)
	}
	wg.Wait()
	s.tasks.Wait()
	s.stopSnapshotLocked()
	s.stopInferenceLocked()
	if parent.Err() != nil {
		return nil
	}
	var first error // the goroutine that failed first; the others saw ctx end
	for len(errc) > 0 {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		first = errors.New("edgeimpulse: session ended")
	}
	return first
}

// Close releases the connection; safe after Serve returned.
func (s *session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		_ = s.conn.WriteControl(websocket.CloseMessage, // wall time: a socket deadline
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		err = s.conn.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// read returns the next message, decoded by its frame type (text is JSON,
// binary is CBOR: the rule of docs/protocols/edge-impulse.md §2.1, which also
// copes with a server that answers in the other encoding).
func (s *session) read() (Inbound, error) {
	typ, b, err := s.conn.ReadMessage()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return Inbound{}, errDeadLink
		}
		return Inbound{}, err
	}
	s.l.deps.Stats.MsgsIn.Add(1)
	s.l.deps.Stats.BytesIn.Add(int64(len(b)))
	enc := JSON
	if typ == websocket.BinaryMessage {
		enc = CBOR
	}
	return DecodeMessage(enc, b)
}

func (s *session) readLoop(ctx context.Context) error {
	for {
		in, err := s.read()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrMalformed) {
			s.l.logLimited(&s.l.warns.malformed, "malformed message", "err", err)
			s.refuse(ctx, in)
			continue
		}
		if err != nil {
			return fmt.Errorf("edgeimpulse read: %w", err)
		}
		s.dispatch(ctx, in)
	}
}

// refuse answers a sample or startSnapshot request whose fields have the
// wrong type with sample:false or snapshotFailed and the reason: Studio
// waits for a reply to each request, and the reference client leaves it
// waiting (docs/protocols/edge-impulse.md §4.5, §4.7). Any other malformed
// message gets no reply, as none is expected.
func (s *session) refuse(ctx context.Context, in Inbound) {
	switch in.Type {
	case msgSample:
		_ = s.send(ctx, sampleReply{Sample: false, Error: "invalid sample request: " + in.Invalid})
	case msgStartSnapshot:
		_ = s.send(ctx, snapshotFailed{SnapshotFailed: true, Error: "invalid startSnapshot request: " + in.Invalid})
	}
}

func (s *session) dispatch(ctx context.Context, in Inbound) {
	switch in.Type {
	case msgSample:
		s.handleSample(ctx, in.Sample)
	case msgStartSnapshot:
		s.startSnapshot(ctx, in.Resolution)
	case msgStopSnapshot:
		s.stopSnapshot(ctx)
	case msgStartInference:
		s.startInference(ctx)
	case msgStopInference:
		s.stopInference(ctx)
	case msgNewModel:
		s.updateModel(ctx)
	case msgRecordAck:
		s.recordAck(ctx, in.Ack, in.Err)
	case msgRecordRequest:
		// No records are kept on the board (the Hello says so).
		_ = s.send(ctx, impulseRecordsResponse{ImpulseRecordsResponse: false, Error: "no inference records are stored on this device"})
	case msgErr:
		s.l.logLimited(&s.l.warns.serverErr, "server reported an error", "err", s.l.peer(in.Err))
	case msgHello:
		s.l.log.Debug("late hello reply ignored")
	default:
		s.l.log.Debug("unknown message ignored", "keys", s.l.peerKeys(in.Keys))
	}
}

func (s *session) writeLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-s.out:
			if err := s.write(m); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("edgeimpulse write: %w", err)
			}
		}
	}
}

// outMsg is one message in the writer's queue. A snapshot frame's bytes
// are frame.b, which the writer hands back to the frame's pool once
// written; other messages own b outright.
type outMsg struct {
	b     []byte
	frame *frameBuf
}

// write sends one queued message, then hands a frame's buffer back:
// WriteMessage has copied the bytes by the time it returns (into the
// connection's write buffer, where a client masks them), so nothing reads
// them afterwards. Only the writer calls it.
func (s *session) write(m outMsg) error {
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout)) // wall time: a socket deadline
	err := s.conn.WriteMessage(s.frameType, m.b)
	n := len(m.b)
	if m.frame != nil {
		m.frame.pool.put(m.frame)
	}
	if err != nil {
		return err
	}
	s.l.deps.Stats.MsgsOut.Add(1)
	s.l.deps.Stats.BytesOut.Add(int64(n))
	return nil
}

// pingLoop pings every PingInterval, paced by the link's clock; the read
// deadline (extended by every message and pong) turns a silent peer into
// errDeadLink in the reader.
func (s *session) pingLoop(ctx context.Context) error {
	for {
		if s.l.deps.Clock.Sleep(ctx, s.l.cfg.PingInterval.D()) != nil {
			return nil
		}
		err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.l.cfg.PongTimeout.D())) // wall time: a socket deadline
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("edgeimpulse ping: %w", err)
		}
	}
}

// send queues a control message, waiting for room; it fails only when the
// session is ending.
func (s *session) send(ctx context.Context, v any) error {
	b, err := EncodeMessage(s.enc, v)
	if err != nil {
		return err
	}
	select {
	case s.out <- outMsg{b: b}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendFrame queues the snapshotFrame message of jpeg, built in a buffer
// from pool (which the writer hands back once written), if there is room,
// and counts it as dropped otherwise. jpeg is only read, and not kept.
func (s *session) sendFrame(pool *framePool, jpeg []byte) {
	fb := pool.get()
	fb.b = appendSnapshotFrame(fb.b[:0], s.enc, jpeg)
	select {
	case s.out <- outMsg{b: fb.b, frame: fb}:
	default:
		pool.put(fb)
		n := s.framesDropped.Add(1)
		s.l.deps.Stats.SetDetail("snapshot_frames_dropped", fmt.Sprint(n))
	}
}
