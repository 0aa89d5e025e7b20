package frameio

import (
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

// TestClockTimer: the timer fires once at the clock's time after d, a
// Reset replaces the pending firing, and Stop leaves no channel to select
// and no goroutine (the package's goleak check) even while a wait of an
// hour is pending on the real clock.
func TestClockTimer(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fc := clock.NewFake(start)
	tm := &clockTimer{clk: fc}
	if tm.C() != nil {
		t.Fatal("a new timer has a channel: it would fire in a select")
	}
	tm.Reset(3 * time.Second)
	if at := <-tm.C(); !at.Equal(start.Add(3 * time.Second)) {
		t.Errorf("fired at %v, want the clock's time 3 s later", at)
	}
	tm.Stop()
	if tm.C() != nil {
		t.Error("a stopped timer keeps its channel")
	}
	if got := fc.Sleeps(); len(got) != 1 || got[0] != 3*time.Second {
		t.Errorf("sleeps %v, want one of 3 s on the injected clock", got)
	}

	rt := &clockTimer{clk: clock.Real{}}
	rt.Reset(time.Hour)
	first := rt.C()
	rt.Reset(time.Millisecond)
	select {
	case <-rt.C():
	case <-first:
		t.Fatal("the replaced timer fired")
	case <-time.After(10 * time.Second):
		t.Fatal("the reset timer never fired")
	}
	rt.Reset(time.Hour)
	rt.Stop() // must not wait out the hour
	rt.Stop() // a second Stop does nothing
}

// TestClockTicker: ticks come d apart on the injected clock, one per
// receive, and stop ends the goroutine.
func TestClockTicker(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fc := clock.NewFake(start)
	c, stop := clockTicker(fc)(15 * time.Second)
	for i := 1; i <= 3; i++ {
		if at := <-c; !at.Equal(start.Add(time.Duration(i) * 15 * time.Second)) {
			t.Errorf("tick %d at %v, want %v", i, at, start.Add(time.Duration(i)*15*time.Second))
		}
	}
	stop()
	if n := len(fc.Sleeps()); n < 3 || n > 4 {
		t.Errorf("%d sleeps for 3 ticks taken", n)
	}
}
