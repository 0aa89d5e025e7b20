package edgeimpulse

import (
	"context"
	"encoding/base64"
	"slices"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// lowHeight is the height of low-resolution snapshot frames
// (docs/protocols/edge-impulse.md §4.7).
const lowHeight = 96

// snapRun is one running snapshot stream.
type snapRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	res    chan string // resolution changes (a start while streaming), cap 1
}

// startSnapshot starts streaming the camera ("low": 96 px high, one frame
// per SnapshotLowInterval on average (lowPacer); "high": full frames at the
// camera's rate; any other resolution streams low).
// A start while streaming switches the resolution and re-sends
// snapshotStarted, as the Linux client does. It runs beside a sample.
func (s *session) startSnapshot(ctx context.Context, res string) {
	if s.l.camera == "" {
		_ = s.send(ctx, snapshotFailed{SnapshotFailed: true, Error: "Device does not support snapshot streaming"})
		return
	}
	if res != "low" && res != "high" {
		// The Linux client takes any value (docs/protocols/edge-impulse.md
		// §4.7); low is the cheap one.
		s.l.log.Info("unknown snapshot resolution: streaming low", "resolution", s.l.peer(res))
		res = "low"
	}
	s.mu.Lock()
	if run := s.snap; run != nil {
		s.mu.Unlock()
		select {
		case <-run.res: // replace a change not yet picked up
		default:
		}
		run.res <- res
		_ = s.send(ctx, snapshotStarted{SnapshotStarted: true})
		return
	}
	sub, err := s.l.deps.Hub.Subscribe(s.l.camera, sensors.SubscribeOptions{Policy: sensors.DropOldest, Queue: 2, Label: s.l.deps.Name})
	if err != nil {
		s.mu.Unlock()
		_ = s.send(ctx, snapshotFailed{SnapshotFailed: true, Error: "camera unavailable: " + err.Error()})
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	run := &snapRun{cancel: cancel, done: make(chan struct{}), res: make(chan string, 1)}
	s.snap = run
	s.mu.Unlock()
	s.l.log.Info("snapshot streaming started", "camera", s.l.camera, "resolution", res)
	s.l.deps.Stats.SetDetail("snapshot", s.l.camera)
	_ = s.send(ctx, snapshotStarted{SnapshotStarted: true})
	s.tasks.Go(func() {
		defer close(run.done)
		defer sub.Close()
		if failed := s.stream(sctx, sub, run, res); failed != "" {
			s.mu.Lock()
			if s.snap == run {
				s.snap = nil
			}
			s.mu.Unlock()
			s.l.deps.Stats.SetDetail("snapshot", "")
			_ = s.send(ctx, snapshotFailed{SnapshotFailed: true, Error: failed})
		}
	})
}

// stopSnapshot ends the stream and answers snapshotStopped once its last frame
// is queued; without a stream there is no reply (docs/protocols/edge-impulse.md
// §4.7).
func (s *session) stopSnapshot(ctx context.Context) {
	if s.stopSnapshotLocked() {
		s.l.log.Info("snapshot streaming stopped", "camera", s.l.camera)
		_ = s.send(ctx, snapshotStopped{SnapshotStopped: true})
	}
}

// stopSnapshotLocked stops a running stream and waits for it; it reports
// whether one was running. (It takes s.mu itself; the name follows the
// stream's lock discipline: callers must not hold s.mu.)
func (s *session) stopSnapshotLocked() bool {
	s.mu.Lock()
	run := s.snap
	s.snap = nil
	s.mu.Unlock()
	if run == nil {
		return false
	}
	run.cancel()
	<-run.done
	s.l.deps.Stats.SetDetail("snapshot", "")
	return true
}

// stream sends frames until ctx ends; it returns a reason when the stream
// failed on its own (the camera went away). Its shrink buffer and message
// buffers (framePool) live as long as the stream, so the steady path
// allocates no message and no preview of its own.
func (s *session) stream(ctx context.Context, sub sensors.Subscription, run *snapRun, res string) string {
	pace := newLowPacer(s.l.opts.SnapshotLowInterval)
	var shrink scaler
	frames := newFramePool()
	for {
		select {
		case <-ctx.Done():
			return ""
		case res = <-run.res:
		case smp, open := <-sub.C():
			if !open {
				return "camera stopped"
			}
			data := smp.Data
			if res == "low" {
				// Paced on capture time: a camera's frames are evenly
				// spaced there, while arrival times jitter.
				at := smp.Time
				if at.IsZero() {
					at = s.l.deps.Clock.Now()
				}
				if !pace.admit(at) {
					continue
				}
				small, err := shrink.scale(ctx, sub, data, lowHeight)
				if err != nil {
					s.l.logLimited(&s.l.warns.snapshotScale, "snapshot frame skipped", "err", err)
					continue
				}
				data = small
			}
			s.sendFrame(frames, data)
		}
	}
}

// lowPacer picks the low-resolution snapshot frames to send: one per
// interval of capture time on average, where a frame may come up to a
// quarter of the interval early. A strict "interval since the last frame
// sent" rule loses frames of a jittery camera: from a 10 fps source whose
// frame pairs are often 199.x ms apart it sent 3.8-3.9 fps instead of 5
// (docs/protocols/edge-impulse.md §4.7). Here a frame is sent when a whole
// frame's credit has accrued; credit accrues with capture time, at most 1¼
// frames of it, so the gap between two frames sent is never under ¾
// interval and no run of n frames spans less than (n-1) intervals minus
// that quarter. A capture time before the last frame sent (the clock was
// set back) starts afresh.
//
// Concurrency: owned by one stream goroutine.
type lowPacer struct {
	interval, early time.Duration
	// due is the capture time from which the next frame may go (zero: the
	// next one goes); last is the capture time of the last frame sent.
	due, last time.Time
}

func newLowPacer(interval time.Duration) *lowPacer {
	return &lowPacer{interval: interval, early: interval / 4}
}

// admit reports whether the frame captured at at is sent, and if so counts
// it.
func (p *lowPacer) admit(at time.Time) bool {
	fresh := p.last.IsZero() || at.Before(p.last)
	if !fresh && at.Before(p.due) {
		return false
	}
	// Credit does not pile up beyond 1¼ frames: a frame after a long gap
	// starts the schedule again from its own time, less the early margin.
	if from := at.Add(-p.early); fresh || p.due.Before(from) {
		p.due = from
	}
	p.due = p.due.Add(p.interval)
	p.last = at
	return true
}

// framePool recycles the buffers snapshotFrame messages are built in, so a
// stream's steady path allocates no message: a buffer goes from get to the
// writer's queue, and back through put once the writer has written it (or
// at once when the queue is full and the frame is dropped). A buffer is
// never rewritten while queued or being written, since only its holder
// puts it back. Each stream has its own pool, so a stopped stream's
// buffers (full frames at "high") are freed with it.
//
// Concurrency: get runs on the stream's goroutine, put on the writer's or
// the stream's; the free list is a channel. It has room for every buffer a
// stream can have out at once (outQueue queued, one being written, one
// being built), so after warm-up get never allocates and put never drops.
type framePool struct{ free chan *frameBuf }

// framePoolSize bounds the buffers a stream has out at once.
const framePoolSize = outQueue + 2

// frameBuf is one snapshotFrame message; it belongs to whoever holds it
// (the stream building it, then the queue and the writer), who must not
// keep b after handing it back.
type frameBuf struct {
	b    []byte
	pool *framePool
}

func newFramePool() *framePool { return &framePool{free: make(chan *frameBuf, framePoolSize)} }

// get returns a free buffer, or a new one while the pool warms up.
func (p *framePool) get() *frameBuf {
	select {
	case fb := <-p.free:
		return fb
	default:
		return &frameBuf{pool: p}
	}
}

// put hands fb back once nothing reads its bytes any more.
func (p *framePool) put(fb *frameBuf) {
	fb.b = fb.b[:0]
	select {
	case p.free <- fb:
	default: // more than framePoolSize out: cannot happen; the GC takes it
	}
}

// The snapshotFrame message around its base64, byte for byte what
// EncodeMessage writes for snapshotFrame{SnapshotFrame: b64, FileName:
// "frame.jpg"} (TestSnapshotFrameBytes holds them to it): JSON needs no
// escaping inside base64, and CBOR is a 2-entry map of text strings in
// field order, the base64's length in the shortest head (cborHead).
const (
	jsonFrameHead = `{"snapshotFrame":"`
	jsonFrameTail = `","fileName":"frame.jpg"}`
	cborFrameHead = "\xa2\x6dsnapshotFrame" // map(2), text(13) key
	cborFrameTail = "\x68fileName\x69frame.jpg"
)

// appendSnapshotFrame appends the snapshotFrame message carrying jpeg in
// enc to dst, base64-encoding jpeg straight into place: no string, no
// encoder, one growth of dst at most.
func appendSnapshotFrame(dst []byte, enc Encoding, jpeg []byte) []byte {
	n := base64.StdEncoding.EncodedLen(len(jpeg))
	dst = slices.Grow(dst, len(cborFrameHead)+9+n+len(jsonFrameTail))
	if enc == CBOR {
		dst = append(dst, cborFrameHead...)
		dst = cborHead(dst, 3, uint64(n)) // text(n)
		dst = base64.StdEncoding.AppendEncode(dst, jpeg)
		return append(dst, cborFrameTail...)
	}
	dst = append(dst, jsonFrameHead...)
	dst = base64.StdEncoding.AppendEncode(dst, jpeg)
	return append(dst, jsonFrameTail...)
}
