package hub_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// manualClock is a clock.Clock whose time moves only when the test calls
// Advance: Sleep blocks until the clock has reached its end or ctx ends.
// Every Sleep reports its duration on started as it begins, so the test
// knows what the hub waits for before it moves time, and every wake-up
// happens inside Advance, so whether a deadline was reached never depends
// on the scheduler.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*sleeper
	started chan time.Duration
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), started: make(chan time.Duration, 1000)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	s := &sleeper{until: c.now.Add(d), wake: make(chan struct{})}
	c.waiters = append(c.waiters, s)
	c.mu.Unlock()
	c.started <- d
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		c.waiters = slices.DeleteFunc(c.waiters, func(w *sleeper) bool { return w == s })
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Advance moves the clock and wakes every sleeper whose end it reached.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waiters = slices.DeleteFunc(c.waiters, func(w *sleeper) bool {
		if w.until.After(c.now) {
			return false
		}
		close(w.wake)
		return true
	})
}

// nextSleep returns the duration of the next Sleep the hub starts.
func (c *manualClock) nextSleep(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.started:
		return d
	case <-time.After(20 * time.Second): // turns a hang into a failure
		t.Fatal("the hub started no wait")
		return 0
	}
}

// watchedSource is a fakeSource that declares stall timeouts, as a camera does.
type watchedSource struct {
	*fakeSource
	first, stall time.Duration
}

func (w *watchedSource) StallTimeouts() (time.Duration, time.Duration) { return w.first, w.stall }

var _ hub.Watched = (*watchedSource)(nil)

// TestWatchdogOnTheClock: the watchdog waits first-sample timeout for the
// first sample, then the stall timeout counted from the newest sample (a
// timer that fires after samples came is armed for the rest), ends the run
// exactly when the source has been silent that long, records the stall and
// restarts the source after the backoff; a restarted run that delivers
// nothing ends at its first-sample timeout; samples flow again after that.
func TestWatchdogOnTheClock(t *testing.T) {
	const first, stall, backoff = 10 * time.Second, 3 * time.Second, time.Second // no jitter: Policy.Jitter 0
	clk := newManualClock()
	t0 := clk.Now()
	src := &watchedSource{fakeSource: newFake("cam"), first: first, stall: stall}
	h := hub.New(hub.Options{Clock: clk, Restart: retry.Policy{Min: backoff, Max: backoff}})
	t.Cleanup(h.Close)
	if err := h.Add(src); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, h, "cam", sensors.SubscribeOptions{Queue: 16})
	defer sub.Close()
	sample := func(seq uint64) {
		t.Helper()
		push(src.fakeSource, 1, seq)
		if got := collect(sub, 1); len(got) != 1 || got[0] != seq {
			t.Fatalf("subscriber got %v, want [%d]", got, seq)
		}
	}

	if d := clk.nextSleep(t); d != first {
		t.Fatalf("first wait %v, want the first-sample timeout %v", d, first)
	}
	clk.Advance(first - time.Nanosecond)
	sample(0) // just in time: the first-sample timer is replaced by the stall timer
	if d := clk.nextSleep(t); d != stall {
		t.Fatalf("wait after the first sample %v, want the stall timeout %v (a backoff here means the run was ended)", d, stall)
	}
	clk.Advance(2 * time.Second)
	sample(1)
	clk.Advance(time.Second) // the stall timer fires, 1 s after the newest sample
	if d := clk.nextSleep(t); d != 2*time.Second {
		t.Fatalf("re-armed for %v, want the 2 s left of the stall timeout", d)
	}
	clk.Advance(2*time.Second - time.Nanosecond) // not yet: nothing wakes
	clk.Advance(time.Nanosecond)                 // silent for exactly 3 s
	if d := clk.nextSleep(t); d != backoff {
		t.Fatalf("wait after the stall %v, want the restart backoff %v (a shorter one: the timer fired early and was re-armed)", d, backoff)
	}
	wantAt := t0.Add(first - time.Nanosecond + 5*time.Second)
	st := h.Stats()[0]
	if st.Stalls != 1 || st.Restarts != 1 || st.State != hub.StateError ||
		!st.LastStall.At.Equal(wantAt) || st.LastStall.Reason != "no sample for 3s (after 2 in this run)" ||
		st.LastError != "stalled: no sample for 3s (after 2 in this run)" {
		t.Fatalf("after the stall: %+v, want 1 stall at t0+%v", st, wantAt.Sub(t0))
	}
	if src.open.Load() || src.opens.Load() != 1 {
		t.Fatalf("the stalled run is still open (open %v, opens %d)", src.open.Load(), src.opens.Load())
	}

	// The restarted run never delivers: it ends at its first-sample timeout.
	clk.Advance(backoff)
	if d := clk.nextSleep(t); d != first {
		t.Fatalf("restarted run waits %v, want the first-sample timeout %v", d, first)
	}
	if st := h.Stats()[0]; st.State != hub.StateRunning {
		t.Fatalf("not restarted: %+v", st)
	}
	agenttest.Eventually(t, "the second open", func() bool { return src.opens.Load() == 2 })
	clk.Advance(first)
	if d := clk.nextSleep(t); d != backoff {
		t.Fatalf("wait after the silent start %v, want the backoff %v", d, backoff)
	}
	st = h.Stats()[0]
	if st.Stalls != 2 || st.Restarts != 2 || st.LastStall.Reason != "no sample in the first 10s" ||
		!st.LastStall.At.Equal(wantAt.Add(backoff+first)) {
		t.Fatalf("after the silent start: %+v", st)
	}

	// The third run delivers again.
	clk.Advance(backoff)
	clk.nextSleep(t) // its first-sample timer
	sample(2)        // Run of the third open took it
	sample(3)
	if st := h.Stats()[0]; st.State != hub.StateRunning || st.Samples != 4 || src.opens.Load() != 3 {
		t.Fatalf("after recovery: %+v, opens %d", st, src.opens.Load())
	}
}

// TestWatchdogWithoutFirstSampleTimeout: a zero first-sample timeout leaves
// a slow start alone (the first wait the hub starts is the stall timer,
// armed by the first sample), and the stall timeout still applies.
func TestWatchdogWithoutFirstSampleTimeout(t *testing.T) {
	clk := newManualClock()
	src := &watchedSource{fakeSource: newFake("cam"), first: 0, stall: 3 * time.Second}
	h := hub.New(hub.Options{Clock: clk})
	t.Cleanup(h.Close)
	if err := h.Add(src); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, h, "cam", sensors.SubscribeOptions{Queue: 16})
	defer sub.Close()
	clk.Advance(time.Hour) // no first-sample timer: nothing to wake
	push(src.fakeSource, 1, 0)
	collect(sub, 1)
	if d := clk.nextSleep(t); d != 3*time.Second {
		t.Fatalf("the first wait is %v, want only the stall timer (3s)", d)
	}
	clk.Advance(3 * time.Second)
	clk.nextSleep(t) // the backoff after the stall
	if st := h.Stats()[0]; st.Stalls != 1 || st.LastStall.Reason != "no sample for 3s (after 1 in this run)" {
		t.Fatalf("stats %+v", st)
	}
}
