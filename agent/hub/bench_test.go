package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/sensors"
)

// floodSource emits b.N motion rows as fast as the hub takes them.
type floodSource struct {
	n    int
	done chan struct{}
}

func (f *floodSource) Info() sensors.Info {
	return sensors.Info{Name: "flood", Kind: "bench", Class: sensors.Motion, Rate: 1e6}
}

func (f *floodSource) Run(ctx context.Context, out chan<- sensors.Sample) error {
	row := []float64{1, 2, 3}
	now := time.Now()
	for i := 0; i < f.n; i++ {
		select {
		case out <- sensors.Sample{Class: sensors.Motion, Seq: uint64(i), Time: now, Values: row}:
		case <-ctx.Done():
			return nil
		}
	}
	close(f.done)
	<-ctx.Done()
	return nil
}

// BenchmarkFanOut floods the hub (the source never waits) and measures what
// reaches N subscribers that drain their queues: offered/s is the pump's
// rate, delivered/s/sub what each subscriber received, %dropped what the
// newest-wins queues shed because the readers were slower than the flood.
// Compare subs=4 with subs=1 in one run.
func BenchmarkFanOut(b *testing.B) {
	for _, subs := range []int{1, 4} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			src := &floodSource{n: b.N, done: make(chan struct{})}
			h := hub.New(hub.Options{})
			defer h.Close()
			if err := h.Add(src); err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			var dropped, received uint64
			var mu sync.Mutex
			b.ResetTimer()
			for range subs {
				s, err := h.Subscribe("flood", sensors.SubscribeOptions{Queue: 256})
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					got := 0
					for range s.C() {
						got++
					}
					mu.Lock()
					dropped += s.Dropped()
					received += uint64(got)
					mu.Unlock()
				}()
				defer s.Close()
			}
			<-src.done
			h.Close()
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "offered/s")
			b.ReportMetric(float64(received)/float64(subs)/b.Elapsed().Seconds(), "delivered/s/sub")
			b.ReportMetric(float64(dropped)/float64(b.N*subs)*100, "%dropped")
		})
	}
}

// watchedFlood is a floodSource the watchdog watches, as a camera is.
type watchedFlood struct{ *floodSource }

func (watchedFlood) StallTimeouts() (time.Duration, time.Duration) {
	return 10 * time.Second, 3 * time.Second
}

// BenchmarkWatchdog is BenchmarkFanOut's pump with one subscriber, for a
// source the watchdog watches and for one it does not: the difference per
// sample (ns/op) is what the watchdog costs the pump (a clock read per
// sample and one timer per stall period).
func BenchmarkWatchdog(b *testing.B) {
	for _, watched := range []bool{false, true} {
		b.Run(fmt.Sprintf("watched=%v", watched), func(b *testing.B) {
			flood := &floodSource{n: b.N, done: make(chan struct{})}
			var src sensors.Source = flood
			if watched {
				src = watchedFlood{flood}
			}
			h := hub.New(hub.Options{})
			defer h.Close()
			if err := h.Add(src); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			s, err := h.Subscribe("flood", sensors.SubscribeOptions{Queue: 256})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range s.C() {
				}
			}()
			<-flood.done
			h.Close()
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "offered/s")
		})
	}
}
