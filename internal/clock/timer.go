package clock

import (
	"context"
	"time"
)

// The links wait on timers beside sockets and channels in one select, and
// those waits must follow the injected clock so tests control them. A Clock
// offers Sleep; Timer and Ticker are Sleep in a goroutine that the timer's
// owner stops, so they work on any Clock (on Fake they fire at once, since
// Fake's Sleep returns at once).

// Timer fires once, like time.Timer, on a Clock. NewTimer returns it
// stopped; Reset starts it.
//
// Concurrency: one goroutine owns a Timer and calls Reset and Stop; C may be
// read anywhere. Stop waits for the timer's goroutine, so a stopped Timer
// leaves nothing running. A nil *Timer never fires and may be stopped.
type Timer struct {
	clk    Clock
	c      chan time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// NewTimer returns a stopped timer on clk.
func NewTimer(clk Clock) *Timer { return &Timer{clk: clk} }

// AfterTimer returns a timer on clk that fires once after d.
func AfterTimer(clk Clock, d time.Duration) *Timer {
	t := NewTimer(clk)
	t.Reset(d)
	return t
}

// C returns the channel the timer sends its time on, once: nil (never ready
// in a select) while the timer is stopped or t is nil. Read it anew after
// every Reset.
func (t *Timer) C() <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.c
}

// Reset stops the timer and starts it again to fire once after d.
func (t *Timer) Reset(d time.Duration) {
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
// received is dropped. Safe on a stopped or nil timer.
func (t *Timer) Stop() {
	if t == nil || t.cancel == nil {
		return
	}
	t.cancel()
	<-t.done
	t.c, t.cancel, t.done = nil, nil, nil
}

// Ticker sends the clock's time on C every period, like time.Ticker: a tick
// the reader is not ready for is dropped.
//
// Concurrency: NewTicker starts one goroutine; Stop (or the end of the
// context given to NewTicker) ends it, and Stop waits for it. C has one
// reader, the ticker's owner.
type Ticker struct {
	C      <-chan time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// NewTicker starts a ticker of period d (> 0) on clk until ctx ends or Stop.
func NewTicker(ctx context.Context, clk Clock, d time.Duration) *Ticker {
	ctx, cancel := context.WithCancel(ctx)
	c := make(chan time.Time, 1)
	t := &Ticker{C: c, cancel: cancel, done: make(chan struct{})}
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
func (t *Ticker) Stop() {
	t.cancel()
	<-t.done
}
