package hub_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource forwards samples the test pushes on feed, and counts how often
// the "device" was opened and whether it is open now.
type fakeSource struct {
	name   string
	feed   chan sensors.Sample
	opens  atomic.Int32
	open   atomic.Bool
	failOn atomic.Int32 // Run returns errFail after this many samples (0 = never)
	perm   atomic.Bool  // the failure is permanent
}

var errFail = errors.New("device unplugged")

func newFake(name string) *fakeSource {
	return &fakeSource{name: name, feed: make(chan sensors.Sample)}
}

func (f *fakeSource) Info() sensors.Info {
	return sensors.Info{Name: f.name, Kind: "fake", Class: sensors.Motion, Rate: 100}
}

func (f *fakeSource) Run(ctx context.Context, out chan<- sensors.Sample) error {
	f.opens.Add(1)
	f.open.Store(true)
	defer f.open.Store(false)
	n := int32(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-f.feed:
			select {
			case out <- s:
			case <-ctx.Done():
				return nil
			}
			n++
			if lim := f.failOn.Load(); lim > 0 && n >= lim {
				if f.perm.Load() {
					return retry.Permanent(errFail)
				}
				return errFail
			}
		}
	}
}

func newHub(t *testing.T, srcs ...sensors.Source) *hub.Hub {
	t.Helper()
	h := hub.New(hub.Options{Restart: retry.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	for _, s := range srcs {
		if err := h.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(h.Close)
	return h
}

func subscribe(t *testing.T, h *hub.Hub, name string, opts sensors.SubscribeOptions) sensors.Subscription {
	t.Helper()
	s, err := h.Subscribe(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func push(f *fakeSource, n int, from uint64) {
	for i := range n {
		f.feed <- sensors.Sample{Class: sensors.Motion, Seq: from + uint64(i), Time: time.Now()}
	}
}

func collect(sub sensors.Subscription, n int) []uint64 {
	var got []uint64
	for s := range sub.C() {
		got = append(got, s.Seq)
		if len(got) == n {
			break
		}
	}
	return got
}

func TestFanOutWithSlowSubscriber(t *testing.T) {
	src := newFake("accel")
	h := newHub(t, src)
	const n = 200
	fast := []sensors.Subscription{
		subscribe(t, h, "accel", sensors.SubscribeOptions{Queue: n, Label: "a"}),
		subscribe(t, h, "accel", sensors.SubscribeOptions{Queue: n, Label: "b"}),
		subscribe(t, h, "accel", sensors.SubscribeOptions{Queue: n, Label: "c"}),
	}
	slow := subscribe(t, h, "accel", sensors.SubscribeOptions{Queue: 4, Policy: sensors.DropOldest, Label: "slow"})
	var wg sync.WaitGroup
	results := make([][]uint64, len(fast))
	for i, s := range fast {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = collect(s, n)
		}()
	}
	push(src, n, 0)
	wg.Wait()
	for i, r := range results {
		if len(r) != n || r[0] != 0 || r[n-1] != n-1 {
			t.Errorf("fast subscriber %d got %d samples (%v…)", i, len(r), r[:min(len(r), 3)])
		}
		if fast[i].Dropped() != 0 {
			t.Errorf("fast subscriber %d dropped %d", i, fast[i].Dropped())
		}
	}
	// Newest wins: the slow one holds the last 4 and counted the rest.
	agenttest.Eventually(t, "slow drops", func() bool { return slow.Dropped() == n-4 })
	if got := collect(slow, 4); got[0] != n-4 || got[3] != n-1 {
		t.Errorf("slow subscriber kept %v, want the newest 4", got)
	}
	if src.opens.Load() != 1 {
		t.Errorf("device opened %d times for 4 subscribers, want 1", src.opens.Load())
	}
	st := h.Stats()[0]
	if st.Subscribers != 4 || st.Samples != n || st.Dropped != n-4 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDeviceReleasedAfterLastUnsubscribe(t *testing.T) {
	src := newFake("cam")
	h := newHub(t, src)
	if src.open.Load() {
		t.Fatal("device opened before anyone subscribed")
	}
	a := subscribe(t, h, "cam", sensors.SubscribeOptions{})
	b := subscribe(t, h, "cam", sensors.SubscribeOptions{})
	agenttest.Eventually(t, "device open", src.open.Load)
	a.Close()
	push(src, 1, 0) // still running for b
	if got := collect(b, 1); len(got) != 1 {
		t.Fatal("b stopped receiving after a left")
	}
	b.Close()
	b.Close() // idempotent
	agenttest.Eventually(t, "device released", func() bool { return !src.open.Load() })
	if st := h.Stats()[0]; st.State != hub.StateIdle || st.Subscribers != 0 {
		t.Errorf("stats after last close = %+v", st)
	}
	// A new subscriber opens it again.
	c := subscribe(t, h, "cam", sensors.SubscribeOptions{})
	agenttest.Eventually(t, "device reopened", src.open.Load)
	c.Close()
	agenttest.Eventually(t, "device released again", func() bool { return !src.open.Load() })
	if src.opens.Load() != 2 {
		t.Errorf("opens = %d, want 2", src.opens.Load())
	}
}

func TestSourceFailureRestarts(t *testing.T) {
	src := newFake("serial")
	src.failOn.Store(3)
	h := newHub(t, src)
	sub := subscribe(t, h, "serial", sensors.SubscribeOptions{Queue: 32})
	push(src, 3, 0) // third sample ends the run with an error
	push(src, 3, 3) // delivered by the restarted source
	if got := collect(sub, 6); len(got) != 6 || got[5] != 5 {
		t.Fatalf("got %v", got)
	}
	agenttest.Eventually(t, "restart counted", func() bool { return h.Stats()[0].Restarts >= 1 })
	if st := h.Stats()[0]; st.LastError != errFail.Error() {
		t.Errorf("last error = %q", st.LastError)
	}
	sub.Close()
}

func TestPermanentSourceFailureIsNotRetried(t *testing.T) {
	src := newFake("mic")
	src.failOn.Store(1)
	src.perm.Store(true)
	h := newHub(t, src)
	sub := subscribe(t, h, "mic", sensors.SubscribeOptions{})
	push(src, 1, 0)
	agenttest.Eventually(t, "error state", func() bool { return h.Stats()[0].State == hub.StateError })
	time.Sleep(20 * time.Millisecond)
	if src.opens.Load() != 1 {
		t.Errorf("opens = %d, want 1 (no retry)", src.opens.Load())
	}
	sub.Close()
}

func TestNoDropOverrunIsFlagged(t *testing.T) {
	src := newFake("accel")
	h := newHub(t, src)
	win := subscribe(t, h, "accel", sensors.SubscribeOptions{Queue: 10, Policy: sensors.NoDrop})
	push(src, 10, 0)
	agenttest.Eventually(t, "10 delivered", func() bool { return h.Stats()[0].Samples == 10 })
	if win.Overrun() {
		t.Fatal("overrun with a queue sized for the window")
	}
	push(src, 5, 10)
	agenttest.Eventually(t, "5 drops", func() bool { return win.Dropped() == 5 })
	if !win.Overrun() {
		t.Error("overrun not flagged")
	}
	// What was queued is kept, in order: the first 10.
	if got := collect(win, 10); got[0] != 0 || got[9] != 9 {
		t.Errorf("kept %v", got)
	}
	win.Close()
}

func TestUnknownAndFailedSensors(t *testing.T) {
	h := newHub(t)
	if _, err := h.Subscribe("nope", sensors.SubscribeOptions{}); !errors.Is(err, sensors.ErrUnknownSensor) {
		t.Errorf("unknown sensor: %v", err)
	}
	buildErr := errors.New("microphone support not compiled in")
	if err := h.AddFailed(sensors.Info{Name: "mic", Kind: "microphone"}, buildErr); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe("mic", sensors.SubscribeOptions{}); !errors.Is(err, buildErr) {
		t.Errorf("failed sensor: %v", err)
	}
	if st := h.Stats()[0]; st.State != hub.StateError || st.LastError != buildErr.Error() {
		t.Errorf("stats = %+v", st)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	src := newFake("accel")
	h := hub.New(hub.Options{})
	if err := h.Add(src); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, h, "accel", sensors.SubscribeOptions{})
	agenttest.Eventually(t, "open", src.open.Load)
	h.Close()
	if _, ok := <-sub.C(); ok {
		t.Error("channel still open after hub Close")
	}
	if src.open.Load() {
		t.Error("device still open after hub Close")
	}
	if _, err := h.Subscribe("accel", sensors.SubscribeOptions{}); !errors.Is(err, sensors.ErrHubClosed) {
		t.Errorf("subscribe after close: %v", err)
	}
	sub.Close() // after hub close: no panic
}
