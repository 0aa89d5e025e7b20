package hub_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/sensors"
)

// slowStopSource is a camera whose release takes as long as the test wants:
// Run returns only after ctx ended and release was closed. It counts runs
// and the most that ever ran at once.
type slowStopSource struct {
	release chan struct{}
	runs    atomic.Int32
	live    atomic.Int32
	maxLive atomic.Int32
}

func (s *slowStopSource) Info() sensors.Info {
	return sensors.Info{Name: "cam", Kind: "fake", Class: sensors.Still}
}

func (s *slowStopSource) Run(ctx context.Context, _ chan<- sensors.Sample) error {
	s.runs.Add(1)
	n := s.live.Add(1)
	defer s.live.Add(-1)
	for {
		m := s.maxLive.Load()
		if n <= m || s.maxLive.CompareAndSwap(m, n) {
			break
		}
	}
	<-ctx.Done()
	<-s.release
	return nil
}

// TestTrustStartStopFloodCoalesces: a peer flooding start/stop (Edge
// Impulse startSnapshot/stopSnapshot, one subscribe and close each) while the
// camera takes its time to close must not queue one goroutine per restart:
// only the latest wish matters and one worker per sensor acts on it. On the
// chained implementation each pair left a goroutine waiting for the previous
// pump (20 000 pairs: 19 600 goroutines, 97 MiB).
func TestTrustStartStopFloodCoalesces(t *testing.T) {
	src := &slowStopSource{release: make(chan struct{})}
	h := newHub(t, src)
	first := subscribe(t, h, "cam", sensors.SubscribeOptions{Queue: 1})
	agenttest.Eventually(t, "camera open", func() bool { return src.live.Load() == 1 })
	first.Close() // the camera is now stuck closing until release
	base := runtime.NumGoroutine()
	const pairs = 2000
	peak := 0
	for i := range pairs {
		s, err := h.Subscribe("cam", sensors.SubscribeOptions{Queue: 1})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if i%100 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	last := subscribe(t, h, "cam", sensors.SubscribeOptions{Queue: 1}) // the latest wish: run
	peak = max(peak, runtime.NumGoroutine())
	if grow := peak - base; grow > 10 {
		t.Errorf("%d start/stop pairs while the camera closes grew goroutines by %d (want a bounded few)", pairs, grow)
	}
	close(src.release)
	agenttest.Eventually(t, "camera open again for the last subscriber", func() bool { return src.live.Load() == 1 && src.runs.Load() >= 2 })
	if n := src.runs.Load(); n > 3 {
		t.Errorf("the camera was started %d times for one final wish (want the flood coalesced into at most 3 runs)", n)
	}
	if n := src.maxLive.Load(); n != 1 {
		t.Errorf("the camera ran %d times at once, want 1", n)
	}
	last.Close()
	agenttest.Eventually(t, "camera released", func() bool { return src.live.Load() == 0 })
	agenttest.Eventually(t, "workers gone", func() bool { return runtime.NumGoroutine() <= base })
}
