package frameio

import (
	"context"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

// The link's waits all go through the injected clock (Deps.Clock), so a test
// clock governs them. The clock offers Sleep, not timers, and Serve's loop
// must wait on a timer beside the socket in one select: clockTimer and
// clockTicker are Sleep in a goroutine that the caller owns and stops.

// clockTimer is a one-shot timer on clk. Its zero value (with clk set) is
// stopped. Not safe for concurrent use: one goroutine (Serve's) owns it, and
// must Stop it before returning.
type clockTimer struct {
	clk    clock.Clock
	c      chan time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// C returns the channel the timer fires on: nil (never ready in a select)
// while the timer is stopped. Read it anew after every Reset.
func (t *clockTimer) C() <-chan time.Time { return t.c }

// Reset stops the timer and starts it again to fire once after d.
func (t *clockTimer) Reset(d time.Duration) {
	t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	c, done := make(chan time.Time, 1), make(chan struct{})
	go func() {
		defer close(done)
		if t.clk.Sleep(ctx, d) == nil {
			c <- t.clk.Now() // buffered: never blocks
		}
	}()
	t.c, t.cancel, t.done = c, cancel, done
}

// Stop cancels the timer and waits for its goroutine; a firing not yet
// received is dropped. Stopping a stopped timer does nothing.
func (t *clockTimer) Stop() {
	if t.cancel == nil {
		return
	}
	t.cancel()
	<-t.done
	t.c, t.cancel, t.done = nil, nil, nil
}

// clockTicker is the production Options.Ticker: a tick every d on clk,
// each period counted from when the previous tick was taken (a heartbeat
// loop takes its tick at once, so this is a period of d). stop ends the
// goroutine and waits for it.
func clockTicker(clk clock.Clock) func(d time.Duration) (<-chan time.Time, func()) {
	return func(d time.Duration) (<-chan time.Time, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		c, done := make(chan time.Time), make(chan struct{})
		go func() {
			defer close(done)
			for clk.Sleep(ctx, d) == nil {
				select {
				case c <- clk.Now():
				case <-ctx.Done():
					return
				}
			}
		}()
		return c, func() {
			cancel()
			<-done
		}
	}
}
