package frameio_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// BenchmarkUpload100MB measures delivering one spooled 100 MB asset to the
// fake over loopback with production part sizes (25 MiB parts) and 1, 2
// or 4 parts in flight. The spool write happens outside the timer.
func BenchmarkUpload100MB(b *testing.B) {
	for _, p := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("parallel=%d", p), func(b *testing.B) { benchUpload(b, p) })
	}
}

func benchUpload(b *testing.B, parallel int) {
	const size = 100 << 20
	fake, err := frameiotest.New(frameiotest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer fake.Close()
	dir := b.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{MaxBytes: 2 * size})
	if err != nil {
		b.Fatal(err)
	}
	cfg := frameio.Config{APIURL: fake.URL(), SocketURL: fake.SocketURL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
	cfg.SetDefaults()
	cfg.Upload.Parallel = parallel
	state := filepath.Join(dir, "state")
	a, r, exp := fake.IssueTokens()
	now := time.Now()
	if err := frameio.SaveTokens(filepath.Join(state, frameio.TokenFileName), &frameio.Tokens{AccessToken: a, RefreshToken: r,
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(exp) * time.Second)}); err != nil {
		b.Fatal(err)
	}
	l, err := frameio.New(cfg, transport.Deps{Name: "fio", Logger: slog.New(slog.DiscardHandler), StateDir: state,
		Spool: sp, Stats: &transport.Stats{}, Clock: clock.Real{}, Version: "1.0.0"}, frameio.Options{})
	if err != nil {
		b.Fatal(err)
	}
	data := randomBytes(size)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Work(ctx)
	}()
	defer func() { cancel(); <-done }()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := sp.Put("frameio-asset", map[string]any{"name": fmt.Sprint("big", i, ".mov"), "filetype": "video/quicktime",
			"captured": time.Now()}, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for sp.Stats().Items > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	for _, a := range fake.Assets() {
		if !a.Complete || a.SHA256 != sum(data) {
			b.Fatalf("asset %s incomplete or corrupt", a.Name)
		}
	}
}

const envIdle = "FRAMEIO_TEST_IDLE_DIR"

// idleChild runs a connected link with production timings until killed.
func idleChild() bool {
	dir := os.Getenv(envIdle)
	if dir == "" {
		return false
	}
	cfg := frameio.Config{APIURL: os.Getenv(envAPI), SocketURL: os.Getenv(envSocket), ClientID: os.Getenv(envID), ClientSecret: os.Getenv(envSecret)}
	cfg.SetDefaults()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	l, err := frameio.New(cfg, transport.Deps{Name: "fio", Logger: log, StateDir: dir, Stats: &transport.Stats{}, Clock: clock.Real{}, Version: "1.0.0"}, frameio.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	_ = supervisor.New(supervisor.Options{Name: "fio", Kind: "frameio", Link: l, Logger: log}).Run(context.Background())
	os.Exit(4)
	return true
}

// procStats reads RSS (kB) and user+system CPU ticks of pid.
func procStats(pid int) (rssKB, ticks int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			rssKB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return rssKB, ut + sy, nil
}

// TestIdleFootprint measures an idle connected link (15 s heartbeats) in a
// child process for FRAMEIO_IDLE_MEASURE (e.g. 10m); skipped otherwise.
func TestIdleFootprint(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("FRAMEIO_IDLE_MEASURE"))
	if err != nil || d <= 0 {
		t.Skip("set FRAMEIO_IDLE_MEASURE=10m to measure the idle link's RSS and CPU")
	}
	fake := newFake(t, frameiotest.Options{})
	dir := t.TempDir()
	pairWithFake(t, fake, filepath.Join(dir, frameio.TokenFileName))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envIdle+"="+dir, envAPI+"="+fake.URL(), envSocket+"="+fake.SocketURL(),
		envID+"="+fake.ClientID(), envSecret+"="+fake.ClientSecret())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFor(t, "join", func() bool { return fake.Stats().Joins == 1 })
	time.Sleep(5 * time.Second) // settle
	rss0, cpu0, err := procStats(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var maxRSS int64
	for time.Since(start) < d {
		time.Sleep(10 * time.Second)
		rss, _, err := procStats(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		maxRSS = max(maxRSS, rss)
	}
	rss1, cpu1, err := procStats(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	cpuSec := float64(cpu1-cpu0) / 100 // USER_HZ
	st := fake.Stats()
	t.Logf("idle link over %s: RSS start %d kB, end %d kB, max %d kB; CPU %.2f s (%.4f %% of one core); heartbeats %d, upgrades %d, idle closes %d",
		el.Round(time.Second), rss0, rss1, maxRSS, cpuSec, 100*cpuSec/el.Seconds(), st.Heartbeats, st.Upgrades, st.IdleCloses)
	if st.Upgrades != 1 || st.IdleCloses != 0 {
		t.Errorf("the idle link reconnected: %+v", st)
	}
}
