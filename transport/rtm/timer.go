package rtm

import (
	"context"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

// clockTimer fires once, d after it was made, on the link's injected clock
// (deps.Clock). internal/clock offers Now and Sleep only, so the timer is one
// goroutine sleeping on the clock.
//
// Concurrency: C may be read from any goroutine; whoever made the timer
// calls Stop, which ends the goroutine and waits for it, so a stopped timer
// leaves nothing running. A nil *clockTimer never fires and may be stopped.
type clockTimer struct {
	c      chan struct{} // closed when d has passed
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine returned
}

func newClockTimer(clk clock.Clock, d time.Duration) *clockTimer {
	ctx, cancel := context.WithCancel(context.Background())
	t := &clockTimer{c: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		if clk.Sleep(ctx, d) == nil {
			close(t.c)
		}
	}()
	return t
}

// C is closed once the timer fired (and stays closed: a loop that selects on
// it must drop the timer once it fired). Nil for a nil timer.
func (t *clockTimer) C() <-chan struct{} {
	if t == nil {
		return nil
	}
	return t.c
}

// Stop stops the timer if it has not fired and waits for its goroutine. Safe
// on nil and more than once.
func (t *clockTimer) Stop() {
	if t == nil {
		return
	}
	t.cancel()
	<-t.done
}
