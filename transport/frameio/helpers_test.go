package frameio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

func TestMain(m *testing.M) {
	if childMain() || idleChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// secretRE matches the fake's tokens, device codes and URL signatures.
var secretRE = regexp.MustCompile(`(at|rt|dc)-[0-9a-f]{16,}|X-Amz-Signature|Authorization=`)

// checkNoSecrets fails when a credential reached the logs.
func checkNoSecrets(t *testing.T, logs *logxtest.Buffer) {
	t.Helper()
	if m := secretRE.FindString(logs.String()); m != "" {
		t.Errorf("a credential reached the logs: %q", m)
	}
}

func newFake(t testing.TB, opts frameiotest.Options) *frameiotest.Server {
	t.Helper()
	f, err := frameiotest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitSessions waits until the fake has counted n joins and the supervisor
// n sessions. The fake counts a join once its reply is sent, before the
// link's Dial has read it: a fault provoked in between would end that Dial,
// not the session the test means to break.
func waitSessions(t testing.TB, fake *frameiotest.Server, sup *supervisor.Supervisor, n uint64) {
	t.Helper()
	agenttest.Eventually(t, fmt.Sprintf("session %d up", n), func() bool {
		return fake.Stats().Joins == int(n) && sup.Status().Sessions == n
	})
}

// fastOptions shrink the link's timings so tests run in seconds.
func fastOptions() frameio.Options {
	return frameio.Options{
		Heartbeat:     500 * time.Millisecond,
		DeadAfter:     5 * time.Second,
		JoinTimeout:   2 * time.Second,
		IdentityEvery: time.Minute,
		Rejoin:        retry.Policy{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		NotPairedWait: 50 * time.Millisecond,
		Deliver:       retry.Policy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		PartRetry:     retry.Policy{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond},
		MinPartSize:   1 << 10,
		PartSize:      4 << 10,
		WatchEvery:    20 * time.Millisecond,
		ClockWait:     20 * time.Millisecond,
	}
}

type env struct {
	fake  *frameiotest.Server
	cfg   frameio.Config
	deps  transport.Deps
	stats *transport.Stats
	spool *spool.Spool
	// spoolClock records the spool's retry waits.
	spoolClock *recClock
	logs       *logxtest.Buffer
	dir        string
}

// newEnv builds deps with a real hub over a synthetic camera "cam", a spool
// and tokens issued by the fake (paired=true).
func newEnv(t *testing.T, fake *frameiotest.Server, paired bool) *env {
	t.Helper()
	dir := t.TempDir()
	logs := &logxtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cam := synthetic.Config{Signal: synthetic.SignalCamera, FPS: 20}
	cam.SetDefaults()
	deps := agenttest.Deps(t, "fio", agenttest.Hub(t, log, synthetic.NewCamera("cam", cam)), log)
	deps.Version = "1.2.3"
	spClock := &recClock{}
	deps.Spool = agenttest.Spool(t, spool.Options{Logger: log, Clock: spClock})
	cfg := frameio.Config{APIURL: fake.URL(), SocketURL: fake.SocketURL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
	cfg.SetDefaults()
	if paired {
		pairWithFake(t, fake, frameio.TokenPath(&cfg, deps.StateDir))
	}
	t.Cleanup(func() { checkNoSecrets(t, logs) })
	return &env{fake: fake, cfg: cfg, deps: deps, stats: deps.Stats, spool: deps.Spool, spoolClock: spClock, logs: logs, dir: dir}
}

// recClock is the real clock that also records every Sleep, so tests can
// check a wait the peer asked for was honoured.
type recClock struct {
	clock.Real
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *recClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return c.Real.Sleep(ctx, d)
}

func (c *recClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func pairWithFake(t testing.TB, fake *frameiotest.Server, path string) {
	t.Helper()
	a, r, exp := fake.IssueTokens()
	now := time.Now().UTC()
	if err := frameio.SaveTokens(path, &frameio.Tokens{AccessToken: a, RefreshToken: r,
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(exp) * time.Second)}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) link(t *testing.T, opts frameio.Options) *frameio.Link {
	t.Helper()
	l, err := frameio.New(e.cfg, e.deps, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runBG runs f in a goroutine until the test ends; cleanup cancels and waits.
func runBG(t testing.TB, f func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// putAsset spools data as a Frame.io asset captured at captured.
func putAsset(t *testing.T, sp *spool.Spool, name, filetype string, captured time.Time, data []byte) spool.Item {
	t.Helper()
	it, err := sp.Put("frameio-asset", map[string]any{"name": name, "filetype": filetype, "captured": captured, "source": "test"}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
