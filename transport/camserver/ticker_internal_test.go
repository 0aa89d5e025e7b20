package camserver

import (
	"context"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

// TestTickerFollowsInjectedClock: the stream's tickers read the link's
// clock, so every tick is a multiple of the period after the clock's start
// (a fake clock here, which moves only when slept on), and both Stop and
// the end of the context end the goroutine (goleak in TestMain checks).
func TestTickerFollowsInjectedClock(t *testing.T) {
	start := time.Unix(1e9, 0)
	const d = 100 * time.Millisecond
	clk := clock.NewFake(start)
	tk := newTicker(t.Context(), clk, d)
	var last time.Time
	for range 3 {
		at := <-tk.C
		if el := at.Sub(start); el <= 0 || el%d != 0 || !at.After(last) {
			t.Fatalf("tick at start+%v after start+%v: want increasing multiples of %v", el, last.Sub(start), d)
		}
		last = at
	}
	tk.Stop()

	ctx, cancel := context.WithCancel(t.Context())
	tk = newTicker(ctx, clk, d)
	<-tk.C
	cancel()
	tk.Stop()
}
