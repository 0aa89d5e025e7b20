package camserver_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// TestWorkHonoursCancelAndPause: a record waiting for a session (the link
// is offline) is in flight for the spool; pausing uploads stops that wait
// and keeps the record, cancelling it drops it for good, and neither counts
// as a failed attempt.
func TestWorkHonoursCancelAndPause(t *testing.T) {
	srv := newServer(t, camservertest.Options{})
	sp := agenttest.Spool(t, spool.Options{})
	put := func(what string) string {
		it, err := sp.Put("record", map[string]string{"meta": "JPEG"}, bytes.NewReader([]byte("\xff\xd8 "+what+" \xff\xd9")))
		if err != nil {
			t.Fatal(err)
		}
		return it.ID
	}
	first, second := put("first"), put("second")
	deps := agenttest.Deps(t, "cs", sensorHub(t, nil), nil)
	deps.Spool = sp
	cfg := camserver.Config{URL: srv.URL(), User: camservertest.DemoUser, Password: camservertest.DemoPassword, Device: device}
	cfg.SetDefaults()
	link, err := camserver.New(cfg, deps, camserver.Options{Deliver: retry.Policy{Min: 10e6, Max: 100e6}})
	if err != nil {
		t.Fatal(err)
	}
	// Work alone: no session is ever dialled, so a record waits for one.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- link.Work(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Work = %v", err)
		}
	}()
	inFlight := func(id string) func() bool {
		return func() bool {
			for _, e := range sp.List() {
				if e.InFlight {
					return e.ID == id
				}
			}
			return false
		}
	}
	agenttest.Eventually(t, "the first record in flight", inFlight(first))
	if err := sp.SetPaused(true); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the wait stopped", func() bool { return !inFlight(first)() })
	if err := sp.RetryNow(second); err != nil { // sent by hand while paused
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the second record in flight", inFlight(second))
	if err := sp.Cancel(second); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the cancelled record gone", func() bool { return !inFlight(second)() && sp.Stats().Items == 1 })
	if _, ok := sp.Get(first); !ok {
		t.Error("the paused record was dropped")
	}
	if st := sp.Stats(); st.Cancelled != 1 || st.Retries != 0 || st.Delivered != 0 {
		t.Errorf("spool %+v", st)
	}
}
