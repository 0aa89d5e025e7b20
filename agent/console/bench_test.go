package console_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/console"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/internal/reexec"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
)

// childEnv makes the test binary the child of BenchmarkIdleRSS: "base" is
// a hub and a status server, "console" the same with the console mounted
// and running. CONSOLE_RSS_SECONDS is how long it idles (default 20).
const childEnv = "CONSOLE_RSS_CHILD"

// rssChild runs one idle process and prints its memory; it returns the
// exit code.
func rssChild() int {
	mode := os.Getenv(childEnv)
	secs, err := strconv.Atoi(os.Getenv("CONSOLE_RSS_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 20
	}
	h := hub.New(hub.Options{})
	defer h.Close()
	for _, sig := range []string{synthetic.SignalMotion, synthetic.SignalAudio, synthetic.SignalCamera, synthetic.SignalH264} {
		c := synthetic.Config{Signal: sig}
		c.SetDefaults()
		src, err := synthetic.New(sig, c, sensors.Env{})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		if err := h.Add(src); err != nil {
			fmt.Println("error:", err)
			return 1
		}
	}
	snap := func() status.Snapshot {
		s := status.Snapshot{Device: status.Device{ID: "d1", Name: "bench", Type: "TEST"},
			Links: []status.LinkStatus{{Name: "studio", Kind: "edgeimpulse", State: "up", Since: time.Now()}}}
		for _, st := range h.Stats() {
			s.Sensors = append(s.Sensors, status.SensorStatus{Name: st.Name, Kind: st.Kind, Class: st.Class, State: st.State})
		}
		return s
	}
	dir, err := os.MkdirTemp("", "console-rss-")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := status.New(snap, nil)
	done := make(chan struct{}, 2)
	if mode == "console" {
		cfg := config.Default()
		cfg.StateDir = dir
		con, err := console.New(console.Options{Hub: h, Snapshot: snap, Config: func() *config.Config { return &cfg },
			Listen: ln.Addr(), TokenFile: console.TokenPath(&cfg), CaptureDir: console.CaptureDir(&cfg)})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		srv.Mount(con.Handler(), console.Prefixes...)
		go func() {
			_ = con.Run(ctx)
			done <- struct{}{}
		}()
	} else {
		done <- struct{}{}
	}
	go func() {
		_ = srv.Serve(ctx, ln)
		done <- struct{}{}
	}()
	if resp, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
	}
	time.Sleep(time.Duration(secs) * time.Second)
	rss := procStatus("VmRSS")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("rss_kib=%d heap_inuse=%d goroutines=%d\n", rss, ms.HeapInuse, runtime.NumGoroutine())
	cancel()
	<-done
	<-done
	return 0
}

// procStatus reads a kB field of /proc/self/status.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// BenchmarkIdleRSS measures what the console adds to an idle agent with no
// browser connected: child processes with the same hub (the demo's four
// synthetic sensors, idle) and status server, with and without the console
// mounted and running, idle for CONSOLE_RSS_SECONDS; alternating, five of
// each. It reports the medians' difference in VmRSS and in Go heap in use.
//
//	go test -run '^$' -bench IdleRSS -benchtime 1x ./agent/console/
func BenchmarkIdleRSS(b *testing.B) {
	type sample struct{ rss, heap, gor float64 }
	runs := map[string][]sample{}
	for range 5 {
		for _, mode := range []string{"base", "console"} {
			cmd := reexec.Command("-test.run=^$", "-test.bench=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+mode)
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("%s child: %v\n%s", mode, err, out)
			}
			var s sample
			if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "rss_kib=%g heap_inuse=%g goroutines=%g", &s.rss, &s.heap, &s.gor); err != nil {
				b.Fatalf("%s child printed %q: %v", mode, out, err)
			}
			runs[mode] = append(runs[mode], s)
		}
	}
	median := func(mode string, f func(sample) float64) float64 {
		var v []float64
		for _, s := range runs[mode] {
			v = append(v, f(s))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rss := func(s sample) float64 { return s.rss }
	heap := func(s sample) float64 { return s.heap }
	gor := func(s sample) float64 { return s.gor }
	for _, mode := range []string{"base", "console"} {
		var line []string
		for _, s := range runs[mode] {
			line = append(line, fmt.Sprintf("%.0f KiB (heap %.0f KiB)", s.rss, s.heap/1024))
		}
		b.Logf("%-7s VmRSS %s", mode+":", strings.Join(line, ", "))
	}
	b.ReportMetric(median("base", rss)/1024, "MiB-RSS-base")
	b.ReportMetric(median("console", rss)/1024, "MiB-RSS-console")
	b.ReportMetric((median("console", rss)-median("base", rss))/1024, "MiB-RSS-added")
	b.ReportMetric((median("console", heap)-median("base", heap))/1024, "KiB-heap-added")
	b.ReportMetric(median("console", gor)-median("base", gor), "goroutines-added")
}

// cpuTime is this process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPreviewCPU measures the agent's CPU while a browser watches the
// camera preview: the demo in this process (fakes, agent, console), first
// for CONSOLE_CPU_SECONDS (default 30) with Chromium on a blank page, then
// as long with Chromium on the console's camera tab (the demo camera:
// 320×240 JPEG at 5 fps). Chromium runs in its own processes, so this
// process's CPU time is the agent's (and the fakes', the same in both
// windows). It reports both as a share of one core and the difference.
//
//	go test -run '^$' -bench PreviewCPU -benchtime 1x ./agent/console/
func BenchmarkPreviewCPU(b *testing.B) {
	secs, err := strconv.Atoi(os.Getenv("CONSOLE_CPU_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 30
	}
	window := time.Duration(secs) * time.Second
	br := startBrowser(b)
	rig := startDemo(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	br.viewport(1280, 900, false)
	// Let the links settle before measuring.
	time.Sleep(5 * time.Second)
	measure := func() float64 {
		c0, w0 := cpuTime(b), time.Now()
		time.Sleep(window)
		return float64(cpuTime(b)-c0) / float64(time.Since(w0)) * 100
	}
	idle := measure()
	br.navigate(ctx, rig.url+"/#camera")
	br.waitFor(ctx, "a camera frame", frameSig+` !== ''`)
	watching := measure()
	b.ReportMetric(idle, "%CPU-no-browser")
	b.ReportMetric(watching, "%CPU-preview")
	b.ReportMetric(watching-idle, "%CPU-added")
}
