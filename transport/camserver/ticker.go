package camserver

import (
	"context"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

// ticker is time.Ticker paced by the link's injected clock, which offers
// Sleep but no timers: C receives the clock's time every d, and a tick the
// reader is not ready for is dropped, as with time.Ticker.
//
// Concurrency: newTicker starts one goroutine; Stop (or the end of the
// context given to newTicker) ends it, and Stop waits for it. C is read by
// one owner.
type ticker struct {
	C      <-chan time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// newTicker starts a ticker of period d (> 0) on clk until ctx ends or Stop.
func newTicker(ctx context.Context, clk clock.Clock, d time.Duration) *ticker {
	ctx, cancel := context.WithCancel(ctx)
	c := make(chan time.Time, 1)
	t := &ticker{C: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		for clk.Sleep(ctx, d) == nil {
			select {
			case c <- clk.Now():
			default:
			}
		}
	}()
	return t
}

// Stop ends the ticker and waits for its goroutine; no tick is sent after.
func (t *ticker) Stop() {
	t.cancel()
	<-t.done
}
