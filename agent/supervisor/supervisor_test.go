package supervisor_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scriptLink answers each Dial from a script. A step with up > 0 is a session
// that stays up for that long on the fake clock, then ends with err.
type scriptLink struct {
	clk   *clock.Fake
	mu    sync.Mutex
	steps []step
	dials int
}

type step struct {
	dialErr error
	up      time.Duration
	endErr  error
}

func (l *scriptLink) Dial(ctx context.Context) (transport.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dials >= len(l.steps) {
		l.dials++
		<-ctx.Done() // script exhausted: hang like a slow network until stopped
		return nil, ctx.Err()
	}
	s := l.steps[l.dials]
	l.dials++
	if s.dialErr != nil {
		return nil, s.dialErr
	}
	return &session{clk: l.clk, s: s}, nil
}

type session struct {
	clk    *clock.Fake
	s      step
	closed atomic.Bool
}

func (s *session) Serve(ctx context.Context) error {
	s.clk.Advance(s.s.up)
	return s.s.endErr
}
func (s *session) Close() error { s.closed.Store(true); return nil }

func run(t *testing.T, link transport.Link, clk *clock.Fake, p retry.Policy) (*supervisor.Supervisor, func()) {
	t.Helper()
	sup := supervisor.New(supervisor.Options{Name: "l", Kind: "test", Link: link, Clock: clk, Policy: p,
		Rand: func() float64 { return 0 }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sup.Run(ctx)
	}()
	return sup, func() {
		cancel()
		<-done
	}
}

var errDown = errors.New("connection refused")

func waitState(t *testing.T, sup *supervisor.Supervisor, want supervisor.State) supervisor.Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st := sup.Status(); st.State == want {
			return st
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("state = %s, want %s", sup.Status().State, want)
	return supervisor.Status{}
}

var policy = retry.Policy{Min: time.Second, Max: 16 * time.Second, Factor: 2, Jitter: 0.2, StableAfter: time.Minute}

func TestBackoffGrowsWhileDialFails(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	link := &scriptLink{clk: clk}
	for range 7 {
		link.steps = append(link.steps, step{dialErr: errDown})
	}
	sup, stop := run(t, link, clk, policy)
	waitState(t, sup, supervisor.Connecting) // script exhausted: the 8th dial hangs
	for len(clk.Sleeps()) < 7 {
		time.Sleep(time.Millisecond)
	}
	stop()
	want := []time.Duration{1, 2, 4, 8, 16, 16, 16}
	got := clk.Sleeps()
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("sleeps = %v, want %v s", got, want)
		}
	}
	if st := sup.Status(); st.State != supervisor.Stopped || st.Reconnects != 7 {
		t.Errorf("status = %+v", st)
	}
}

func TestBackoffResetsOnlyAfterStableSession(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	link := &scriptLink{clk: clk, steps: []step{
		{dialErr: errDown},                      // wait 1s
		{dialErr: errDown},                      // wait 2s
		{up: 10 * time.Second, endErr: errDown}, // short session: no reset, wait 4s
		{dialErr: errDown},                      // wait 8s
		{up: 2 * time.Minute, endErr: errDown},  // stable session: reset, wait 1s
		{dialErr: errDown},                      // wait 2s
	}}
	sup, stop := run(t, link, clk, policy)
	for len(clk.Sleeps()) < 6 {
		time.Sleep(time.Millisecond)
	}
	waitState(t, sup, supervisor.Connecting)
	stop()
	want := []time.Duration{1, 2, 4, 8, 1, 2}
	got := clk.Sleeps()
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("sleeps = %v, want %v s", got, want)
		}
	}
	if st := sup.Status(); st.Sessions != 2 {
		t.Errorf("sessions = %d, want 2", st.Sessions)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	link := &scriptLink{clk: clk, steps: []step{{dialErr: retry.RetryAfter(errors.New("503"), 45*time.Second)}}}
	sup, stop := run(t, link, clk, policy)
	waitState(t, sup, supervisor.Connecting)
	for len(clk.Sleeps()) < 1 {
		time.Sleep(time.Millisecond)
	}
	stop()
	if got := clk.Sleeps()[0]; got != 45*time.Second {
		t.Errorf("wait = %v, want 45s", got)
	}
}

func TestPermanentErrorStopsOnlyThatLink(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	bad := &scriptLink{clk: clk, steps: []step{{dialErr: retry.Permanent(errors.New("hello rejected: invalid API key"))}}}
	good := &scriptLink{clk: clk, steps: []step{{up: time.Second, endErr: errDown}, {dialErr: errDown}}}
	badSup, stopBad := run(t, bad, clk, policy)
	goodSup, stopGood := run(t, good, clk, policy)
	defer stopGood()
	st := waitState(t, badSup, supervisor.Failed)
	if st.LastError != "dial: hello rejected: invalid API key" {
		t.Errorf("last error = %q", st.LastError)
	}
	stopBad() // Run already returned; this only waits
	// The other link keeps cycling and ends up hanging in its third dial.
	waitState(t, goodSup, supervisor.Connecting)
	for len(clk.Sleeps()) < 2 {
		time.Sleep(time.Millisecond)
	}
	if bad.dials != 1 {
		t.Errorf("failed link dialled %d times, want 1", bad.dials)
	}
}

type workerLink struct {
	scriptLink
	running atomic.Bool
	stopped chan struct{}
}

func (w *workerLink) Work(ctx context.Context) error {
	w.running.Store(true)
	<-ctx.Done()
	close(w.stopped)
	return nil
}

func TestWorkerRunsForLinkLifetime(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	w := &workerLink{scriptLink: scriptLink{clk: clk}, stopped: make(chan struct{})}
	sup, stop := run(t, w, clk, policy)
	waitState(t, sup, supervisor.Connecting)
	for !w.running.Load() {
		time.Sleep(time.Millisecond)
	}
	stop()
	select {
	case <-w.stopped:
	default:
		t.Fatal("worker still running after Run returned")
	}
}
