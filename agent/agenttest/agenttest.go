// Package agenttest is the rig the link and agent tests share: a hub over
// given sources, a link's Deps, a link run under the real supervisor, and
// Eventually. Every helper ties what it starts to t.Cleanup, so a test owns
// nothing it has to stop by hand; goleak in a package's TestMain then checks
// that the link stopped everything it started.
//
// It imports agent packages and is imported only by tests (the import
// direction of DESIGN.md holds for production code; tests of transport/...
// may use the agent's hub and supervisor, as the agent does).
package agenttest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// Patience is how long Eventually waits before it fails the test. It only
// turns a hang into a failure; no test relies on anything taking less.
const Patience = 20 * time.Second

// Hub returns a hub holding sources (added in order), closed when the test
// ends. A nil logger discards.
func Hub(t testing.TB, logger *slog.Logger, sources ...sensors.Source) *hub.Hub {
	t.Helper()
	h := hub.New(hub.Options{Logger: logger})
	t.Cleanup(h.Close)
	for _, s := range sources {
		if err := h.Add(s); err != nil {
			t.Fatalf("agenttest: add source: %v", err)
		}
	}
	return h
}

// Deps returns the dependencies the agent would hand a link named name:
// the given hub and logger (nil discards), fresh Stats, the real clock, a
// 0700 state directory under t.TempDir(), device d1/pi, version "test", no
// spool. Set fields of the result for anything else.
func Deps(t testing.TB, name string, h sensors.Hub, logger *slog.Logger) transport.Deps {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return transport.Deps{
		Name: name, Logger: logger, Hub: h, StateDir: dir, Stats: &transport.Stats{},
		Device: transport.Device{ID: "d1", Name: "pi", Type: "TEST"}, Clock: clock.Real{}, Version: "test",
	}
}

// Spool opens a spool in a fresh directory under t.TempDir() with opts.
func Spool(t testing.TB, opts spool.Options) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), opts)
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	return sp
}

// FastBackoff is the supervisor policy RunLink uses: reconnects within
// milliseconds, and a session never counts as stable.
var FastBackoff = retry.Policy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond, StableAfter: time.Hour}

// RunLink runs link under the real supervisor (as the agent does: Dial,
// Serve, reconnect with backoff, Work beside it) until the test ends; the
// cleanup cancels it and waits for Run to return. deps names and logs it.
func RunLink(t testing.TB, kind string, link transport.Link, deps transport.Deps) *supervisor.Supervisor {
	t.Helper()
	return RunLinkWith(t, supervisor.Options{Name: deps.Name, Kind: kind, Link: link, Logger: deps.Logger, Policy: FastBackoff})
}

// RunLinkWith is RunLink with the supervisor's options given in full.
func RunLinkWith(t testing.TB, opts supervisor.Options) *supervisor.Supervisor {
	t.Helper()
	sup := supervisor.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sup.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return sup
}

// WaitUp waits until the supervised link is up.
func WaitUp(t testing.TB, sup *supervisor.Supervisor) {
	t.Helper()
	Eventually(t, "link up", func() bool { return sup.Status().State == supervisor.Up })
}

// Eventually polls cond every 5 ms until it holds, and fails the test with
// what once Patience has passed.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, Patience, what, cond)
}

// EventuallyWithin is Eventually with its own patience d.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := Poll(ctx, what, cond); err != nil {
		t.Fatal(err)
	}
}

// Poll checks cond every 5 ms until it holds (nil) or ctx ends (an error
// naming what). For code that is not a test's own goroutine, such as a fault
// table's cells, which must not call t.Fatal.
func Poll(ctx context.Context, what string, cond func() bool) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
