package agenttest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countLink is a link whose sessions end at once, counting dials.
type countLink struct{ dials atomic.Int64 }

func (l *countLink) Dial(context.Context) (transport.Session, error) {
	l.dials.Add(1)
	return endSession{}, nil
}

type endSession struct{}

func (endSession) Serve(context.Context) error { return errors.New("peer went away") }
func (endSession) Close() error                { return nil }

func TestRunLinkReconnectsAndStops(t *testing.T) {
	deps := agenttest.Deps(t, "l1", agenttest.Hub(t, nil), nil)
	if fi, err := os.Stat(deps.StateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir %v, %v; want a 0700 directory", fi, err)
	}
	l := &countLink{}
	sup := agenttest.RunLink(t, "test", l, deps)
	agenttest.Eventually(t, "three dials", func() bool { return l.dials.Load() >= 3 })
	if st := sup.Status(); st.Name != "l1" || st.Kind != "test" {
		t.Errorf("status %+v, want name l1 kind test", st)
	}
}

func TestPollReportsWhat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := agenttest.Poll(ctx, "the impossible", func() bool { return false })
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "the impossible") {
		t.Fatalf("err = %v, want a deadline error naming what was awaited", err)
	}
}
