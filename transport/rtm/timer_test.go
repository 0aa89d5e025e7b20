package rtm

import (
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

func TestClockTimer(t *testing.T) {
	t.Run("fires after d on the injected clock", func(t *testing.T) {
		fc := clock.NewFake(time.Unix(1000, 0))
		tm := newClockTimer(fc, time.Minute)
		defer tm.Stop()
		select {
		case <-tm.C():
		case <-time.After(20 * time.Second): // only turns a hang into a failure
			t.Fatal("the timer never fired")
		}
		if got := fc.Sleeps(); len(got) != 1 || got[0] != time.Minute {
			t.Errorf("slept %v on the clock, want [1m0s]", got)
		}
	})
	t.Run("stopped before it fires", func(t *testing.T) {
		tm := newClockTimer(clock.Real{}, time.Hour)
		tm.Stop() // returns once the goroutine did (goleak checks the rest)
		select {
		case <-tm.C():
			t.Fatal("a stopped timer fired")
		default:
		}
		tm.Stop() // a second Stop is harmless
	})
	t.Run("nil never fires", func(t *testing.T) {
		var tm *clockTimer
		if tm.C() != nil {
			t.Fatal("a nil timer has a channel")
		}
		tm.Stop()
	})
}
