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

	"github.com/edge-agent/edge-agent/agent/agenttest"
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
	fake := newFake(b, frameiotest.Options{})
	deps := agenttest.Deps(b, "fio", nil, nil)
	deps.Version = "1.0.0"
	sp := agenttest.Spool(b, spool.Options{MaxBytes: 2 * size})
	deps.Spool = sp
	cfg := frameio.Config{APIURL: fake.URL(), SocketURL: fake.SocketURL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
	cfg.SetDefaults()
	cfg.Upload.Parallel = parallel
	pairWithFake(b, fake, frameio.TokenPath(&cfg, deps.StateDir))
	l, err := frameio.New(cfg, deps, frameio.Options{})
	if err != nil {
		b.Fatal(err)
	}
	data := randomBytes(size)
	runBG(b, func(ctx context.Context) { _ = l.Work(ctx) })
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

// idleSample is the period between two samples of BenchmarkIdleFootprint.
const idleSample = 10 * time.Second

// BenchmarkIdleFootprint measures an idle connected link with production
// timings (15 s heartbeats, 60 s identity rate limit) in a child process
// connected to the fake: one iteration is one sampling period of idleSample,
// so -benchtime=60x measures ten minutes. It reports the child's RSS (kB) 5 s
// after the join, at the end and at its largest sample, its CPU time as a
// percentage of one core, and the heartbeats the fake saw; the time per
// iteration is the sampling period and is not reported. An idle link that
// reconnected fails the benchmark.
func BenchmarkIdleFootprint(b *testing.B) {
	fake := newFake(b, frameiotest.Options{})
	dir := b.TempDir()
	pairWithFake(b, fake, filepath.Join(dir, frameio.TokenFileName))
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), envIdle+"="+dir, envAPI+"="+fake.URL(), envSocket+"="+fake.SocketURL(),
		envID+"="+fake.ClientID(), envSecret+"="+fake.ClientSecret())
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	agenttest.Eventually(b, "join", func() bool { return fake.Stats().Joins == 1 })
	time.Sleep(5 * time.Second) // settle
	rss0, cpu0, err := procStats(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	maxRSS := rss0
	for range b.N {
		time.Sleep(idleSample)
		rss, _, err := procStats(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		maxRSS = max(maxRSS, rss)
	}
	rss1, cpu1, err := procStats(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	cpuSec := float64(cpu1-cpu0) / 100 // USER_HZ
	st := fake.Stats()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(rss0), "rss-start-kB")
	b.ReportMetric(float64(rss1), "rss-end-kB")
	b.ReportMetric(float64(maxRSS), "rss-max-kB")
	b.ReportMetric(100*cpuSec/el.Seconds(), "cpu-%-of-core")
	b.ReportMetric(float64(st.Heartbeats), "heartbeats")
	b.Logf("idle link over %s: RSS start %d kB, end %d kB, max %d kB; CPU %.2f s (%.4f %% of one core); heartbeats %d, upgrades %d, idle closes %d",
		el.Round(time.Second), rss0, rss1, maxRSS, cpuSec, 100*cpuSec/el.Seconds(), st.Heartbeats, st.Upgrades, st.IdleCloses)
	if st.Upgrades != 1 || st.IdleCloses != 0 {
		b.Errorf("the idle link reconnected: %+v", st)
	}
}
