package frameio_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// manualTicker is a heartbeat ticker the test fires by hand.
type manualTicker struct{ c chan time.Time }

func (m *manualTicker) ticker(time.Duration) (<-chan time.Time, func()) { return m.c, func() {} }

// TestHeartbeatsForAnHour drives 240 heartbeat periods (an hour at 15 s) by
// hand on a fake clock the fake server also reads, and checks that every
// period carried exactly one heartbeat, no gap reached the fake's 60 s
// limit, and the socket stayed up throughout.
func TestHeartbeatsForAnHour(t *testing.T) {
	var mu sync.Mutex
	virtual := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return virtual }
	fake := newFake(t, frameiotest.Options{Now: now})
	e := newEnv(t, fake, true)
	opts := fastOptions()
	mt := &manualTicker{c: make(chan time.Time)}
	opts.Ticker = mt.ticker
	opts.Heartbeat = 15 * time.Second
	l := e.link(t, opts)
	sup := agenttest.RunLink(t, "frameio", l, e.deps)
	waitSessions(t, fake, sup, 1)
	for i := 1; i <= 240; i++ {
		mu.Lock()
		virtual = virtual.Add(15 * time.Second)
		mu.Unlock()
		mt.c <- time.Now()
		agenttest.Eventually(t, fmt.Sprintf("heartbeat %d acknowledged", i), func() bool { return l.HeartbeatsAcked() == uint64(i) })
	}
	st := fake.Stats()
	if st.Heartbeats != 240 || st.IdleCloses != 0 || st.Upgrades != 1 || st.Joins != 1 || st.MaxHeartbeatGap != 15*time.Second {
		t.Errorf("fake saw %+v; want 240 heartbeats 15 s apart on one socket", st)
	}
	if s := sup.Status(); s.State != supervisor.Up || s.Reconnects != 0 {
		t.Errorf("supervisor %+v", s)
	}
	if got := e.stats.Details()["socket"]; got != "joined" {
		t.Errorf("socket detail = %q", got)
	}
}

// TestHeartbeatsRealTimer checks the real ticker paces heartbeats: ten
// periods of 200 ms with the fake closing after 2 s of silence.
func TestHeartbeatsRealTimer(t *testing.T) {
	fake := newFake(t, frameiotest.Options{IdleTimeout: 2 * time.Second})
	e := newEnv(t, fake, true)
	opts := fastOptions()
	opts.Heartbeat, opts.DeadAfter = 200*time.Millisecond, 2*time.Second
	l := e.link(t, opts)
	agenttest.RunLink(t, "frameio", l, e.deps)
	agenttest.Eventually(t, "10 heartbeats", func() bool { return fake.Stats().Heartbeats >= 10 })
	if st := fake.Stats(); st.IdleCloses != 0 {
		t.Errorf("the fake closed an idle socket: %+v", st)
	}
}

func TestSessionEnds(t *testing.T) {
	tests := []struct {
		name    string
		provoke func(f *frameiotest.Server)
		want    string
	}{
		{"missing heartbeat reply", func(f *frameiotest.Server) { f.SwallowHeartbeats(true) }, "heartbeat timeout"},
		{"server drops the socket", (*frameiotest.Server).DropSockets, "socket"},
		{"server closes the channel", (*frameiotest.Server).CloseChannels, "phx_close"},
		{"server restarts", func(f *frameiotest.Server) { _ = f.Restart() }, "socket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, frameiotest.Options{})
			e := newEnv(t, fake, true)
			l := e.link(t, fastOptions())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			sess, err := l.Dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			done := make(chan error, 1)
			go func() { done <- sess.Serve(ctx) }()
			agenttest.Eventually(t, "a heartbeat", func() bool { return fake.Stats().Heartbeats >= 1 })
			tc.provoke(fake)
			err = <-done
			if err == nil || !strings.Contains(err.Error(), tc.want) || retry.IsPermanent(err) {
				t.Fatalf("Serve = %v, want a transient error with %q", err, tc.want)
			}
		})
	}
}

func TestRejoinAfterChannelError(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	l := e.link(t, fastOptions())
	sup := agenttest.RunLink(t, "frameio", l, e.deps)
	waitSessions(t, fake, sup, 1)
	fake.CrashChannels()
	agenttest.Eventually(t, "rejoin", func() bool { return fake.Stats().Joins == 2 })
	if st := fake.Stats(); st.Upgrades != 1 {
		t.Errorf("upgrades = %d: a channel error must rejoin on the same socket", st.Upgrades)
	}
	if sup.Status().Reconnects != 0 {
		t.Errorf("reconnects = %d", sup.Status().Reconnects)
	}
}

// TestRejoinTimesOut: a rejoin whose reply never comes is given up after
// JoinTimeout (a timer on the link's clock) and tried again on the same
// socket, without a reconnect.
func TestRejoinTimesOut(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	opts := fastOptions()
	opts.JoinTimeout = 500 * time.Millisecond
	l := e.link(t, opts)
	sup := agenttest.RunLink(t, "frameio", l, e.deps)
	waitSessions(t, fake, sup, 1)
	fake.SwallowJoins(1)
	fake.CrashChannels()
	agenttest.Eventually(t, "a rejoin after the unanswered one", func() bool { return fake.Stats().Joins == 2 })
	if st := fake.Stats(); st.SwallowedJoins != 1 || st.Upgrades != 1 {
		t.Errorf("fake saw %+v; want one unanswered join, then a rejoin on the same socket", st)
	}
	if !strings.Contains(e.logs.String(), "rejoin timed out") {
		t.Errorf("the timed-out rejoin was not logged:\n%s", e.logs.String())
	}
	if n := sup.Status().Reconnects; n != 0 {
		t.Errorf("reconnects = %d", n)
	}
}

func TestPausedStatus(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	l := e.link(t, fastOptions())
	sup := agenttest.RunLink(t, "frameio", l, e.deps)
	waitSessions(t, fake, sup, 1)
	for _, p := range []bool{true, false, true} {
		fake.SetPaused(p)
		want := map[bool]string{true: "true", false: "false"}[p]
		agenttest.Eventually(t, "paused="+want, func() bool { return e.stats.Details()["paused"] == want && l.Paused() == p })
	}
	if e.stats.Details()["project"] != "Fake Project" || e.stats.Details()["authorized_by"] != "Fake User" || e.stats.Details()["pairing"] != "paired" {
		t.Errorf("details = %v", e.stats.Details())
	}
	// x-client-version went on every HTTPS call and the upgrade.
	if v := fake.Stats().ClientVersions; len(v) != 1 || v[0] != "1.2.3" {
		t.Errorf("x-client-version values seen: %q", v)
	}
}

// TestExpiredTokenRefreshedWithoutExtraBackoff: the socket drops and the
// access token has expired; the next Dial gets 403, refreshes and connects
// in the same attempt, so the gap is one backoff step.
func TestExpiredTokenRefreshedWithoutExtraBackoff(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	l := e.link(t, fastOptions())
	path := frameio.TokenPath(&e.cfg, e.deps.StateDir)
	before, _ := frameio.LoadTokens(path)
	sup := agenttest.RunLink(t, "frameio", l, e.deps)
	waitSessions(t, fake, sup, 1)
	fake.ExpireAccessTokens()
	fake.DropSockets()
	waitSessions(t, fake, sup, 2)
	st := fake.Stats()
	if st.Forbidden != 1 || st.Refreshes != 1 || st.Upgrades != 2 {
		t.Errorf("forbidden %d, refreshes %d, upgrades %d; want 1, 1, 2", st.Forbidden, st.Refreshes, st.Upgrades)
	}
	if s := sup.Status(); s.Reconnects != 1 || s.Sessions != 2 {
		t.Errorf("reconnects %d sessions %d: the refresh cost an extra backoff step", s.Reconnects, s.Sessions)
	}
	after, err := frameio.LoadTokens(path)
	if err != nil || after.RefreshToken == before.RefreshToken || after.AccessToken == before.AccessToken {
		t.Errorf("rotated tokens not stored: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode: %v %v", fi.Mode(), err)
	}
}

func TestRefreshRefusedFailsLink(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	l := e.link(t, fastOptions())
	sup := agenttest.RunLink(t, "frameio", l, e.deps)
	waitSessions(t, fake, sup, 1)
	fake.RevokeRefreshTokens()
	fake.ExpireAccessTokens()
	fake.DropSockets()
	agenttest.Eventually(t, "failed", func() bool { return sup.Status().State == supervisor.Failed })
	if s := sup.Status(); !strings.Contains(s.LastError, "re-pair with `edge-agent pair`") {
		t.Errorf("last error = %q", s.LastError)
	}
	if e.stats.Details()["pairing"] != "re-pair needed" {
		t.Errorf("pairing detail = %q", e.stats.Details()["pairing"])
	}
}

func TestNotPairedWaits(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, false)
	l := e.link(t, fastOptions())
	_, err := l.Dial(context.Background())
	if !errors.Is(err, frameio.ErrNotPaired) || retry.IsPermanent(err) {
		t.Fatalf("Dial = %v, want ErrNotPaired (transient)", err)
	}
	if d, ok := retry.After(err); !ok || d <= 0 {
		t.Errorf("no retry-after on ErrNotPaired")
	}
	// Pairing while the link runs takes effect on the next Dial.
	pairWithFake(t, fake, frameio.TokenPath(&e.cfg, e.deps.StateDir))
	sess, err := l.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()
}

func TestWrongTopicTriesNextID(t *testing.T) {
	// The fake accepts only the top-level id; the link tries it first.
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	sess, err := e.link(t, fastOptions()).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()
	if fake.Stats().Joins != 1 {
		t.Errorf("joins = %d", fake.Stats().Joins)
	}
}

func TestUnreachableSaysSo(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	l := e.link(t, fastOptions())
	fake.Close()
	_, err := l.Dial(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Frame.io unreachable") {
		t.Fatalf("Dial = %v", err)
	}
	if e.stats.Details()["api_health"] != "unreachable" {
		t.Errorf("api_health = %q", e.stats.Details()["api_health"])
	}
}

// TestProactiveRefresh: a token past 80 % of its life is refreshed by the
// worker before anything is refused, and the rotated pair is on disk.
func TestProactiveRefresh(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, false)
	path := frameio.TokenPath(&e.cfg, e.deps.StateDir)
	a, r, _ := fake.IssueTokens()
	now := time.Now()
	if err := frameio.SaveTokens(path, &frameio.Tokens{AccessToken: a, RefreshToken: r,
		IssuedAt: now.Add(-7 * time.Hour), ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "refresh", func() bool { return fake.Stats().Refreshes == 1 })
	agenttest.Eventually(t, "rotated tokens on disk", func() bool {
		tok, err := frameio.LoadTokens(path)
		return err == nil && tok.RefreshToken != r && tok.ExpiresAt.After(now.Add(7*time.Hour))
	})
	if fake.Stats().Refreshes != 1 {
		t.Errorf("refreshes = %d, want exactly 1", fake.Stats().Refreshes)
	}
}
