package camserver_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
)

// stepClock is a clock the test moves by hand: Sleep blocks until the clock
// reaches its end (or ctx ends) and Now stays put while the link works, so
// each wait the link chooses shows as an exact gap between the request
// times the fake records (it runs on the same clock).
//
// Concurrency: safe for concurrent use; the test goroutine calls step.
type stepClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers []*sleeper
	changed  chan struct{} // closed and replaced whenever sleepers changes
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

func newStepClock(start time.Time) *stepClock {
	return &stepClock{now: start, changed: make(chan struct{})}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	c.mu.Lock()
	sl := &sleeper{until: c.now.Add(d), wake: make(chan struct{})}
	c.sleepers = append(c.sleepers, sl)
	c.signalLocked()
	c.mu.Unlock()
	select {
	case <-sl.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		if i := slices.Index(c.sleepers, sl); i >= 0 {
			c.sleepers = slices.Delete(c.sleepers, i, i+1)
			c.signalLocked()
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *stepClock) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// settle waits until n goroutines sleep on the clock: with n the link's
// loops that use it, the link has finished what it was doing.
func (c *stepClock) settle(t *testing.T, n int) {
	t.Helper()
	patience := time.After(agenttest.Patience) // turns a hang into a failure
	for {
		c.mu.Lock()
		k, ch := len(c.sleepers), c.changed
		c.mu.Unlock()
		if k >= n {
			return
		}
		select {
		case <-ch:
		case <-patience:
			t.Fatalf("%d goroutines sleep on the clock, want %d", k, n)
		}
	}
}

// until settles (n sleepers) and steps the clock until cond holds with the
// link settled.
func (c *stepClock) until(t *testing.T, n int, cond func() bool) {
	t.Helper()
	for c.settle(t, n); !cond(); c.settle(t, n) {
		c.step(never)
	}
}

// step moves the clock to the earliest end of a sleep, or to limit if that
// comes first, and wakes every sleep that ended. The caller settles first.
func (c *stepClock) step(limit time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	to := limit
	for _, sl := range c.sleepers {
		if sl.until.Before(to) {
			to = sl.until
		}
	}
	if to.After(c.now) {
		c.now = to
	}
	kept := c.sleepers[:0]
	for _, sl := range c.sleepers {
		if sl.until.After(c.now) {
			kept = append(kept, sl)
			continue
		}
		close(sl.wake)
	}
	c.sleepers = kept
	c.signalLocked()
	return c.now
}

// requestLog keeps when the fake received each counted request of one
// device, by path.
type requestLog struct {
	device string
	mu     sync.Mutex
	at     map[string][]time.Time
}

func logRequests(srv *camservertest.Server, device string) *requestLog {
	l := &requestLog{device: device, at: map[string][]time.Time{}}
	srv.SetRequestHook(func(path, dev string, at time.Time) {
		if dev != l.device {
			return
		}
		l.mu.Lock()
		l.at[path] = append(l.at[path], at)
		l.mu.Unlock()
	})
	return l
}

// polls returns the times of the device's message polls.
func (l *requestLog) polls() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append(append([]time.Time(nil), l.at["/getMsgs.json"]...), l.at["/getMsgsAndSync.json"]...)
	slices.SortFunc(out, time.Time.Compare)
	return out
}

func (l *requestLog) count(path string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.at[path])
}

// gaps returns the intervals between consecutive times.
func gaps(ts []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]))
	}
	return out
}

// The link's loops that sleep on its clock when the stream is off: the
// heartbeat and the message poll (its request-budget waits included).
const linkSleepers = 2

var (
	stepStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	never     = stepStart.Add(100 * 365 * 24 * time.Hour)
)

// TestPollFastAfterCommand: idle, the link polls every poll (10 s); a
// command (a snapshot) makes it poll every poll_fast (2 s) for
// poll_fast_for (1 min) after it, then it returns to 10 s. The clock is
// stepped by hand and the fake runs on it, so the gaps between the polls
// the fake saw are exactly the waits the link chose. Before the change the
// poll stayed at 10 s, so the snapshot a viewer asked for next waited up to
// 10 s.
func TestPollFastAfterCommand(t *testing.T) {
	const idle, fast, hold = 10 * time.Second, 2 * time.Second, time.Minute
	clk := newStepClock(stepStart)
	r := startRig(t, rigOpts{clock: clk, srvOpts: camservertest.Options{Now: clk.Now}, cfg: func(c *camserver.Config) {
		c.Stream.Sensor, c.Snapshot = "", "cam"
		c.Poll, c.PollFast, c.PollFastFor = conf.Duration(idle), conf.Duration(fast), conf.Duration(hold)
		c.Heartbeat = conf.Duration(time.Hour)
	}})
	log := logRequests(r.srv, device)
	clk.until(t, linkSleepers, func() bool { return len(log.polls()) == 3 })
	if d := r.stats.Details()["poll"]; d != "" {
		t.Errorf("idle: status detail poll = %q, want none", d)
	}
	op := operator(t, r.srv, "viewer-app")
	if err := op.AddMsgs(context.Background(), camserver.Message{Msg: camserver.CmdSnapshot, Target: device}); err != nil {
		t.Fatal(err)
	}
	// The next poll takes the command; then the detail says the link polls fast.
	clk.until(t, linkSleepers, func() bool { return len(log.polls()) == 4 })
	if d, want := r.stats.Details()["poll"], "fast 2s (commands in use)"; d != want {
		t.Errorf("after a command: status detail poll = %q, want %q", d, want)
	}
	nFast := int(hold / fast)
	clk.until(t, linkSleepers, func() bool { return len(log.polls()) == 4+nFast+2 })
	var want []time.Duration
	for range 3 { // idle, then the wait before the poll that took the command
		want = append(want, idle)
	}
	for range nFast {
		want = append(want, fast)
	}
	want = append(want, idle, idle)
	if got := gaps(log.polls()); !slices.Equal(got, want) {
		t.Errorf("gaps between polls = %v\nwant %v (10 s idle, 2 s for a minute after the command, then 10 s)", got, want)
	}
	if d := r.stats.Details()["poll"]; d != "" {
		t.Errorf("after the quiet minute: status detail poll = %q, want none", d)
	}
	agenttest.Eventually(t, "the snapshot's record", func() bool { return len(r.srv.Records()) == 1 })
}

// TestPollFastWithinRequestBudget: at the server's default limit of 50
// requests a minute, a burst of status commands from three viewers (each a
// reply with addMsgs) and the fast polling they start stay within the
// link's request budget: the fake counts each session's requests between
// its per-minute passes (run every minute of the stepped clock, as the
// real server does) and deletes a session over the limit. Fast polls come
// every 4 s, not the 2 s asked for: half of the link's 30 requests a
// minute.
func TestPollFastWithinRequestBudget(t *testing.T) {
	clk := newStepClock(stepStart)
	srv, err := camservertest.New("127.0.0.1:0", camservertest.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	r := startRig(t, rigOpts{srv: srv, clock: clk, cfg: func(c *camserver.Config) {
		c.Stream.Sensor = ""
		c.Poll, c.PollFast, c.PollFastFor = conf.Duration(10*time.Second), conf.Duration(2*time.Second), conf.Duration(time.Minute)
		c.Heartbeat = 0 // derived from the account's limits, as in production
	}})
	log := logRequests(srv, device)
	clk.until(t, linkSleepers, func() bool { return len(log.polls()) == 2 })
	const viewers, each = 3, 16
	for v := range viewers {
		op := operator(t, srv, fmt.Sprintf("viewer-%d", v))
		msgs := make([]camserver.Message, each)
		for i := range msgs {
			msgs[i] = camserver.Message{Msg: camserver.CmdStatus, Target: device}
		}
		if err := op.AddMsgs(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	cmdPoll := len(log.polls()) // the index of the poll that takes the burst
	sawFast := false
	for minute := stepStart.Add(time.Minute); minute.Before(stepStart.Add(6 * time.Minute)); {
		clk.settle(t, linkSleepers)
		sawFast = sawFast || r.stats.Details()["poll"] == "fast 4s (commands in use)"
		if clk.step(minute).Equal(minute) {
			srv.Maintain() // the server's per-minute pass
			minute = minute.Add(time.Minute)
		}
	}
	clk.settle(t, linkSleepers)
	st := srv.Stats()
	if st.DeletedSessions != 0 {
		t.Errorf("the fake deleted %d sessions for their request count", st.DeletedSessions)
	}
	// The link's bucket: 60 % of 50 a minute, and a burst of 3.
	if st.PeakPerMinute > 33 {
		t.Errorf("a session made %d requests in one minute, want at most the link's budget of 30 (+3 burst) of the server's 50", st.PeakPerMinute)
	}
	limited, _ := strconv.Atoi(r.stats.Details()["commands_rate_limited"])
	if got, want := log.count("/addMsgs.json"), viewers*each-limited; got != want || got < viewers*6 {
		t.Errorf("%d status replies, want one per command taken (%d of %d; %d over their sender's rate)", got, want, viewers*each, limited)
	}
	if !sawFast {
		t.Error("the status detail never said the link polls fast at 4 s")
	}
	polls := log.polls()
	if len(polls) <= cmdPoll+1 {
		t.Fatalf("only %d polls", len(polls))
	}
	g := gaps(polls[cmdPoll:])
	if slices.Min(g) < 4*time.Second {
		t.Errorf("gaps between polls after the burst %v: one under the 4 s the budget allows", g)
	}
	if !slices.Contains(g, 4*time.Second) || g[len(g)-1] != 10*time.Second {
		t.Errorf("gaps between polls after the burst %v: want 4 s gaps while commands are in use, then 10 s", g)
	}
}

// TestPollFastDefaults: poll_fast defaults to 2 s but never above poll, so
// a configuration that only set a short poll stays valid.
func TestPollFastDefaults(t *testing.T) {
	for _, tc := range []struct {
		poll, wantFast time.Duration
	}{{0, 2 * time.Second}, {time.Second, time.Second}, {30 * time.Second, 2 * time.Second}} {
		c := camserver.Config{URL: "https://localhost:8080", User: "u", Password: "p", Poll: conf.Duration(tc.poll)}
		c.SetDefaults()
		if c.PollFast.D() != tc.wantFast || c.PollFastFor.D() != time.Minute {
			t.Errorf("poll %v: poll_fast %v, poll_fast_for %v; want %v, 1m", tc.poll, c.PollFast.D(), c.PollFastFor.D(), tc.wantFast)
		}
		v := conf.NewValidator()
		c.Validate(v)
		if len(v.Problems()) != 0 {
			t.Errorf("poll %v: problems %v", tc.poll, v.Problems())
		}
	}
}
