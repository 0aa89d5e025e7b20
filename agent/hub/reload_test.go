package hub_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// countingSource sends one sample per run, numbered by run (Seq is the run
// it came from), then waits for ctx; with fail set a run returns an error at
// once instead. It counts runs and whether one is running.
type countingSource struct {
	name string
	runs atomic.Int32
	open atomic.Bool
	fail atomic.Bool
}

func (c *countingSource) Info() sensors.Info {
	return sensors.Info{Name: c.name, Kind: "fake", Class: sensors.Motion, Rate: 1}
}

func (c *countingSource) Run(ctx context.Context, out chan<- sensors.Sample) error {
	n := c.runs.Add(1)
	if c.fail.Load() {
		return errors.New("device gone")
	}
	c.open.Store(true)
	defer c.open.Store(false)
	select {
	case out <- sensors.Sample{Class: sensors.Motion, Seq: uint64(n), Time: time.Now(), Values: []float64{1}}:
	case <-ctx.Done():
		return nil
	}
	<-ctx.Done()
	return nil
}

func TestRemoveClosesSubscriptionsAndReleasesTheDevice(t *testing.T) {
	src := &countingSource{name: "cam"}
	h := agenttest.Hub(t, nil, src, &countingSource{name: "accel"})
	sub, err := h.Subscribe("cam", sensors.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-sub.C()
	if err := h.Remove("cam"); err != nil {
		t.Fatal(err)
	}
	// Remove returned: the device is closed and the channel too.
	if src.open.Load() {
		t.Error("source still running after Remove returned")
	}
	if _, ok := <-sub.C(); ok {
		t.Error("subscription channel still open after Remove")
	}
	if _, err := h.Subscribe("cam", sensors.SubscribeOptions{}); !errors.Is(err, sensors.ErrUnknownSensor) {
		t.Errorf("Subscribe after Remove: %v, want ErrUnknownSensor", err)
	}
	if got := h.Sensors(); len(got) != 1 || got[0].Name != "accel" {
		t.Errorf("Sensors after Remove = %+v, want only accel", got)
	}
	if err := h.Remove("cam"); !errors.Is(err, sensors.ErrUnknownSensor) {
		t.Errorf("second Remove: %v, want ErrUnknownSensor", err)
	}
	// The name is free again.
	again := &countingSource{name: "cam"}
	if err := h.Add(again); err != nil {
		t.Fatal(err)
	}
	sub2, err := h.Subscribe("cam", sensors.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	<-sub2.C()
	if again.runs.Load() != 1 {
		t.Errorf("re-added source ran %d times, want 1", again.runs.Load())
	}
}

// TestRestartRunsTheSourceAgainAtOnce: a running source is stopped and run
// again while its subscription stays open, not counted as a restart; a
// source waiting out a long backoff is tried at once; an idle one stays idle.
func TestRestartRunsTheSourceAgainAtOnce(t *testing.T) {
	src := &countingSource{name: "cam"}
	idle := &countingSource{name: "idle"}
	h := hub.New(hub.Options{Restart: retry.Policy{Min: time.Hour, Max: time.Hour}})
	t.Cleanup(h.Close)
	for _, s := range []sensors.Source{src, idle} {
		if err := h.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := h.Subscribe("cam", sensors.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if s := <-sub.C(); s.Seq != 1 {
		t.Fatalf("first sample from run %d", s.Seq)
	}
	if err := h.Restart("cam"); err != nil {
		t.Fatal(err)
	}
	s, ok := <-sub.C()
	if !ok || s.Seq != 2 {
		t.Fatalf("after Restart: sample %+v open=%v, want one from run 2 on the same subscription", s, ok)
	}
	if st := stat(h, "cam"); st.Restarts != 0 || st.State != hub.StateRunning {
		t.Errorf("after Restart: %+v, want running with no restart counted", st)
	}

	// A failing source waits an hour before its next try; Restart cuts it.
	src.fail.Store(true)
	if err := h.Restart("cam"); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the failing run counted", func() bool { return stat(h, "cam").State == hub.StateError })
	runs := src.runs.Load()
	src.fail.Store(false)
	if err := h.Restart("cam"); err != nil {
		t.Fatal(err)
	}
	if s := <-sub.C(); s.Seq != uint64(runs+1) {
		t.Errorf("after Restart in backoff: sample from run %d, want %d", s.Seq, runs+1)
	}
	if st := stat(h, "cam"); st.State != hub.StateRunning {
		t.Errorf("state after Restart in backoff: %s", st.State)
	}

	if err := h.Restart("idle"); err != nil {
		t.Fatal(err)
	}
	if idle.runs.Load() != 0 {
		t.Error("Restart started a sensor without subscribers")
	}
	if err := h.Restart("nope"); !errors.Is(err, sensors.ErrUnknownSensor) {
		t.Errorf("Restart of an unknown sensor: %v", err)
	}
}

func stat(h *hub.Hub, name string) hub.Stat {
	for _, s := range h.Stats() {
		if s.Name == name {
			return s
		}
	}
	return hub.Stat{}
}
