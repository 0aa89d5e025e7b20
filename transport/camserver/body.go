package camserver

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// frameBody is the input.raw request body: a one-slot mailbox of whole
// encoded frames, latest wins. The HTTP/2 transport pulls from it only as
// flow control allows, so a slow link shows up as counted drops, never as
// memory growth. It has no GetBody on purpose: a refused stream must end,
// not be replayed by the transport.
//
// Concurrency: Offer is called by one producer, Read by the transport;
// Close and Waiting may be called from anywhere.
type frameBody struct {
	now     func() time.Time // the link's clock: when a frame starts waiting
	ch      chan []byte
	cur     []byte
	closed  chan struct{}
	once    sync.Once
	dropped atomic.Uint64
	taken   atomic.Uint64 // frames taken by the transport
	bytes   atomic.Int64
	waiting atomic.Int64 // unix ns since a frame sits untaken; 0 if none
}

// newFrameBody returns an empty body whose waiting time is read on now (the
// link's clock; Waiting must be given times of the same clock).
func newFrameBody(now func() time.Time) *frameBody {
	return &frameBody{now: now, ch: make(chan []byte, 1), closed: make(chan struct{})}
}

// Offer queues f, replacing (and counting) a frame still waiting.
func (b *frameBody) Offer(f []byte) {
	for {
		select {
		case b.ch <- f:
			b.waiting.CompareAndSwap(0, b.now().UnixNano())
			return
		default:
		}
		select {
		case <-b.ch:
			b.dropped.Add(1)
		default:
		}
	}
}

// Push queues f without dropping: it waits for the slot (or ctx, or the
// body's end). Used where every frame matters more than freshness (the
// throughput benchmark; a recorded file pushed as a stream).
func (b *frameBody) Push(ctx context.Context, f []byte) error {
	select {
	case b.ch <- f:
		b.waiting.CompareAndSwap(0, b.now().UnixNano())
		return nil
	case <-b.closed:
		return io.ErrClosedPipe
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Read hands the transport the rest of the current frame, or the next one.
func (b *frameBody) Read(p []byte) (int, error) {
	if len(b.cur) == 0 {
		select {
		case f := <-b.ch:
			b.cur = f
			b.taken.Add(1)
			b.waiting.Store(0)
			if len(b.ch) > 0 {
				b.waiting.CompareAndSwap(0, b.now().UnixNano())
			}
		case <-b.closed:
			return 0, io.ErrClosedPipe
		}
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	b.bytes.Add(int64(n))
	return n, nil
}

// Close ends the body; the transport then resets the stream.
func (b *frameBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// Done is closed once the transport or we closed the body.
func (b *frameBody) Done() <-chan struct{} { return b.closed }

// Waiting returns how long a frame has waited to be taken (0 if none).
func (b *frameBody) Waiting(now time.Time) time.Duration {
	w := b.waiting.Load()
	if w == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, w))
}
