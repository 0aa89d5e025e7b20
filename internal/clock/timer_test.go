package clock_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestTimerFiresOnTheClock: a timer fires once, at the injected clock's
// time d later, having slept d on that clock; stopped, it has no channel.
func TestTimerFiresOnTheClock(t *testing.T) {
	fc := clock.NewFake(start)
	tm := clock.NewTimer(fc)
	if tm.C() != nil {
		t.Fatal("a new timer has a channel: it would fire in a select")
	}
	tm.Reset(3 * time.Second)
	if at := <-tm.C(); !at.Equal(start.Add(3 * time.Second)) {
		t.Errorf("fired at %v, want the clock's time 3 s later", at)
	}
	select {
	case <-tm.C():
		t.Error("the timer fired twice")
	default:
	}
	tm.Stop()
	if tm.C() != nil {
		t.Error("a stopped timer keeps its channel")
	}
	if got := fc.Sleeps(); len(got) != 1 || got[0] != 3*time.Second {
		t.Errorf("sleeps %v, want one of 3 s on the injected clock", got)
	}
}

// TestTimerResetAndStop: Reset replaces a pending firing; Stop does not wait
// out a long sleep and leaves no goroutine (goleak); nil timers are inert.
func TestTimerResetAndStop(t *testing.T) {
	rt := clock.AfterTimer(clock.Real{}, time.Hour)
	first := rt.C()
	rt.Reset(time.Millisecond)
	select {
	case <-rt.C():
	case <-first:
		t.Fatal("the replaced timer fired")
	case <-time.After(10 * time.Second): // turns a hang into a failure
		t.Fatal("the reset timer never fired")
	}
	rt.Reset(time.Hour)
	rt.Stop()
	rt.Stop()
	var nilTimer *clock.Timer
	if nilTimer.C() != nil {
		t.Error("a nil timer has a channel")
	}
	nilTimer.Stop()
}

// TestTickerFollowsTheClock: ticks are increasing multiples of the period on
// the injected clock; Stop and the end of the context both end the ticker.
func TestTickerFollowsTheClock(t *testing.T) {
	const d = 100 * time.Millisecond
	fc := clock.NewFake(start)
	tk := clock.NewTicker(t.Context(), fc, d)
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
	tk = clock.NewTicker(ctx, fc, d)
	<-tk.C
	cancel()
	tk.Stop()
}
