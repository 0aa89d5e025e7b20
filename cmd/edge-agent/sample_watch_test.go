package main

import (
	"context"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/sensors"
)

type watchedSource struct{ sensors.Source }

func (watchedSource) StallTimeouts() (time.Duration, time.Duration) {
	return 10 * time.Second, 3 * time.Second
}

type plainSource struct{}

func (plainSource) Info() sensors.Info                               { return sensors.Info{Name: "p"} }
func (plainSource) Run(context.Context, chan<- sensors.Sample) error { return nil }

// TestFailFastForwardsWatchdog: `sample` wraps the source for the hub; the
// wrapper must pass the source's watchdog timeouts on (the hub finds them by
// a type assertion) and turn the watchdog off for a source without them.
func TestFailFastForwardsWatchdog(t *testing.T) {
	var w hub.Watched = &failFast{Source: watchedSource{plainSource{}}}
	if first, stall := w.StallTimeouts(); first != 10*time.Second || stall != 3*time.Second {
		t.Errorf("watched source: timeouts %v, %v; want 10s, 3s", first, stall)
	}
	w = &failFast{Source: plainSource{}}
	if first, stall := w.StallTimeouts(); first != 0 || stall != 0 {
		t.Errorf("unwatched source: timeouts %v, %v; want 0, 0 (watchdog off)", first, stall)
	}
}
