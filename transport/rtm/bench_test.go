package rtm_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// BenchmarkSessionSetup measures, at the fake, the time from session_start
// to peer connected, to the first audio packet and to the first video
// keyframe, over b.N sessions (run with -benchtime=20x). The first keyframe
// waits for the source's GOP (1 s in the built-in clip); the link's own
// keyframe request on PLI shortens it when the source supports one.
func BenchmarkSessionSetup(b *testing.B) {
	e := newEnv(b, time.Second)
	cfg := e.cfg
	cfg.Record.Start = "manual"
	link, err := rtm.New(cfg, e.deps, rtm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var conn, audio, video []time.Duration
	for i := 0; i < b.N; i++ {
		sess, err := link.Dial(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		// A session that shows no media within 10 s counts with zeros.
		var in rtmtest.SessionInfo
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = agenttest.Poll(ctx, "first video and audio", func() bool {
			ss := e.fake.Sessions()
			in = ss[len(ss)-1]
			return in.FirstVideo > 0 && in.FirstAudio > 0
		})
		cancel()
		sess.Close()
		conn, audio, video = append(conn, in.Connected), append(audio, in.FirstAudio), append(video, in.FirstVideo)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(median(conn)), "connect-ms")
	b.ReportMetric(ms(p95(conn)), "connect-p95-ms")
	b.ReportMetric(ms(median(audio)), "audio-ms")
	b.ReportMetric(ms(p95(audio)), "audio-p95-ms")
	b.ReportMetric(ms(median(video)), "video-ms")
	b.ReportMetric(ms(p95(video)), "video-p95-ms")
	b.ReportMetric(0, "ns/op")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func p95(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*95/100)]
}

// bigH264 is a stand-in for a 640×480 15 fps camera at about 1 Mbit/s: the
// built-in clip's SPS/PPS, with IDR and P slices padded to 30 KB and 6 KB.
// Nobody decodes it in the benchmark; what costs the agent CPU is the byte
// rate (packetizing, SRTP, sockets), which this matches.
type bigH264 struct{ info sensors.Info }

func (s *bigH264) Info() sensors.Info { return s.info }

func (s *bigH264) RequestKeyframe() error { return nil }

func (s *bigH264) Run(ctx context.Context, out chan<- sensors.Sample) error {
	sps := []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xf6, 0x80, 0x6d, 0x0a, 0x13, 0x50}
	pps := []byte{0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80}
	idr := append([]byte{0, 0, 0, 1, 0x65, 0x88}, bytes.Repeat([]byte{0x5a}, 30<<10)...)
	key := slices.Concat(sps, pps, idr)
	p := append([]byte{0, 0, 0, 1, 0x41, 0x9a}, bytes.Repeat([]byte{0x5a}, 6<<10)...)
	t := time.NewTicker(time.Second / 15)
	defer t.Stop()
	for n := uint64(0); ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			smp := sensors.Sample{Class: sensors.Video, Time: now, Seq: n, Data: p, Duration: time.Second / 15}
			if n%15 == 0 {
				smp.Data, smp.Keyframe = key, true
			}
			select {
			case out <- smp:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// envFakeChild set to 1 makes the test binary the fake of
// BenchmarkPublish640x480 instead of running the tests (TestMain asks
// fakeChild), so the fake's CPU is not counted as the agent's.
const envFakeChild = "RTM_FAKE_CHILD"

// fakeChild runs the fake when the test binary was started as one: it
// prints the fake's URL and token, and returns true when stdin closes.
func fakeChild() bool {
	if os.Getenv(envFakeChild) != "1" {
		return false
	}
	f, err := rtmtest.New("127.0.0.1:0", rtmtest.Options{PingInterval: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	defer f.Close()
	fmt.Printf("FAKE %s %s\n", f.WSURL(), f.Token())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return true
}

func rssKiB() (rss, hwm int64) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublish640x480 publishes ~1 Mbit/s of 640×480 15 fps H.264 plus
// 16 kHz audio (resampled to PCMU) to the fake running in a child process,
// for 10 s per iteration, and reports the agent process's CPU per second
// and its RSS.
func BenchmarkPublish640x480(b *testing.B) {
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), envFakeChild+"=1")
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = child.Wait()
	}()
	var wsURL, token string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "FAKE" {
			wsURL, token = f[1], f[2]
			break
		}
	}
	if wsURL == "" {
		b.Fatal("fake child did not start")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	acfg := synthetic.Config{Signal: synthetic.SignalAudio}
	acfg.SetDefaults()
	h := agenttest.Hub(b, nil,
		&bigH264{info: sensors.Info{Name: "video", Kind: "synthetic", Class: sensors.Video, Rate: 15, Width: 640, Height: 480}},
		synthetic.NewAudio("mic", acfg))
	deps := agenttest.Deps(b, "bench", h, nil)
	stats := deps.Stats
	cfg := rtm.Config{URL: wsURL, Token: token, ClientID: "bench", Video: "video", Audio: "mic", Record: rtm.Record{Start: "manual"}}
	link, err := rtm.New(cfg, deps, rtm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	rss0, _ := rssKiB()
	sess, err := link.Dial(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	time.Sleep(2 * time.Second) // warm up: first keyframe, interceptors
	const window = 10 * time.Second
	var cpu, wall time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0, w0, bytes0 := cpuTime(), time.Now(), stats.BytesOut.Load()
		time.Sleep(window)
		cpu += cpuTime() - c0
		wall += time.Since(w0)
		b.ReportMetric(float64(stats.BytesOut.Load()-bytes0)*8/window.Seconds()/1000, "kbit/s")
	}
	b.StopTimer()
	rss, hwm := rssKiB()
	b.ReportMetric(float64(cpu.Milliseconds())/wall.Seconds(), "cpu-ms/s")
	b.ReportMetric(float64(rss)/1024, "rss-MiB")
	b.ReportMetric(float64(rss-rss0)/1024, "rss-delta-MiB")
	b.ReportMetric(float64(hwm)/1024, "hwm-MiB")
}
