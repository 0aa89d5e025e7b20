package camserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/camserver/frame"
)

// pushRig is a fake server plus an authorized session id for raw pushing.
type pushRig struct {
	srv    *camservertest.Server
	shash  string
	tls    *tls.Config
	u      *url.URL
	frames frameCounter
}

// frameCounter counts the frames the fake received (its frame hook), so a
// push can wait for the last one without polling: the wait ends with it.
type frameCounter struct {
	mu    sync.Mutex
	n     int
	want  int
	ready chan struct{} // closed once n reaches want; nil when nobody waits
}

func (c *frameCounter) add(string, []byte) {
	c.mu.Lock()
	c.n++
	if c.ready != nil && c.n >= c.want {
		close(c.ready)
		c.ready = nil
	}
	c.mu.Unlock()
}

// next returns a channel closed once n more frames than so far have arrived.
func (c *frameCounter) next(n int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	c.want, c.ready = c.n+n, ch
	if n <= 0 {
		close(ch)
		c.ready = nil
	}
	return ch
}

// wait waits for ch from next; the deadline only turns a hang into a failure.
func (c *frameCounter) wait(tb testing.TB, ch <-chan struct{}) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Minute):
		c.mu.Lock()
		defer c.mu.Unlock()
		tb.Fatalf("server got %d of %d frames", c.n, c.want)
	}
}

func newPushRig(tb testing.TB, tlsOn bool) *pushRig {
	srv, err := camservertest.New("127.0.0.1:0", camservertest.Options{TLS: tlsOn})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	u, _ := url.Parse(srv.URL())
	var tc *tls.Config
	if tlsOn {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(srv.CAPEM())
		tc = &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}, ServerName: "127.0.0.1"}
	}
	rt := camserver.NewPinnedTransport(srv.Addr(), tc)
	tb.Cleanup(rt.CloseIdleConnections)
	c := camserver.NewClient(u, rt, camserver.ClientOptions{User: "demo", Password: "demo-pass", Device: "bench-dev"})
	if err := c.Authorize(context.Background()); err != nil {
		tb.Fatal(err)
	}
	sh, _ := c.Shash()
	r := &pushRig{srv: srv, shash: sh, tls: tc, u: u}
	srv.SetFrameHook(r.frames.add)
	return r
}

func (r *pushRig) url() string {
	u := r.u.JoinPath("input.raw")
	u.RawQuery = url.Values{"shash": {r.shash}, "subproto": {"RAW_JPEG"}, "delta": {"400"}}.Encode()
	return u.String()
}

// pushAgent sends n copies of f through the link's own path: frameBody on
// the link's HTTP/2 transport.
func pushAgent(tb testing.TB, r *pushRig, f []byte, n int) {
	rt := camserver.NewPinnedTransport(r.srv.Addr(), r.tls)
	defer rt.CloseIdleConnections()
	body := camserver.NewFrameBody()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, r.url(), body)
	req.ContentLength = -1
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := rt.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}()
	arrived := r.frames.next(n)
	for range n {
		if err := body.Push(ctx, f); err != nil {
			tb.Fatal(err)
		}
	}
	r.frames.wait(tb, arrived)
	cancel()
	body.Close()
	<-done
}

// pushBare sends the same frames with a plain net/http HTTP/2 client writing
// each frame into an io.Pipe (one Write per frame).
func pushBare(tb testing.TB, r *pushRig, f []byte, n int) {
	tr := &http.Transport{DialContext: (&net.Dialer{}).DialContext}
	var protos http.Protocols
	if r.tls != nil {
		tr.TLSClientConfig = r.tls.Clone()
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	tr.Protocols = &protos
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, r.url(), pr)
	req.ContentLength = -1
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := tr.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}()
	arrived := r.frames.next(n)
	for range n {
		if _, err := pw.Write(f); err != nil {
			tb.Fatal(err)
		}
	}
	r.frames.wait(tb, arrived)
	cancel()
	pw.CloseWithError(io.ErrClosedPipe)
	<-done
}

// BenchmarkStreamPush compares the link's push path with a bare Go HTTP/2
// client pushing identical 64 KiB frames to the same fake server.
func BenchmarkStreamPush(b *testing.B) {
	payload := make([]byte, 64<<10)
	f, _ := frame.Encode(payload)
	for _, mode := range []string{"h2c", "tls"} {
		r := newPushRig(b, mode == "tls")
		for _, who := range []struct {
			name string
			push func(testing.TB, *pushRig, []byte, int)
		}{{"agent", pushAgent}, {"bare", pushBare}} {
			b.Run(mode+"/"+who.name, func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				b.ResetTimer()
				who.push(b, r, f, b.N)
			})
		}
	}
}

// BenchmarkPushRSS pushes b.N frames of 100 000 B through the link's path
// (one stream per run) and reports the process's peak RSS (client and
// in-process fake server together) after the run, and how much the run
// raised it. 10 000 frames are 1 GB; another count pushes another amount:
//
//	go test -run '^$' -bench PushRSS -benchtime 10000x ./transport/camserver/
func BenchmarkPushRSS(b *testing.B) {
	payload := make([]byte, 100_000)
	f, _ := frame.Encode(payload)
	for _, mode := range []string{"h2c", "tls"} {
		r := newPushRig(b, mode == "tls")
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			before := vmHWM(b)
			b.ResetTimer()
			pushAgent(b, r, f, b.N)
			b.StopTimer()
			after := vmHWM(b)
			b.ReportMetric(float64(after), "peak-RSS-kB")
			b.ReportMetric(float64(after-before), "RSS-growth-kB")
		})
	}
}

// vmHWM is the process's peak RSS in kB, from Linux's /proc.
func vmHWM(tb testing.TB) int {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Skipf("peak RSS is read from /proc/self/status: %v", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// BenchmarkStreamPushRatio alternates the link's path and the bare client in
// rounds of 200 frames of 64 KiB on the same server, and reports
// time(agent)/time(bare), so machine load hits both alike.
func BenchmarkStreamPushRatio(b *testing.B) {
	payload := make([]byte, 64<<10)
	f, _ := frame.Encode(payload)
	for _, mode := range []string{"h2c", "tls"} {
		r := newPushRig(b, mode == "tls")
		b.Run(mode, func(b *testing.B) {
			var ta, tb time.Duration
			for b.Loop() {
				t0 := time.Now()
				pushAgent(b, r, f, 200)
				t1 := time.Now()
				pushBare(b, r, f, 200)
				ta += t1.Sub(t0)
				tb += time.Since(t1)
			}
			b.ReportMetric(float64(ta)/float64(tb), "agent/bare")
			b.ReportMetric(float64(b.N*200*len(payload))/ta.Seconds()/1e6, "agent-MB/s")
			b.ReportMetric(float64(b.N*200*len(payload))/tb.Seconds()/1e6, "bare-MB/s")
		})
	}
}

// scaledClock runs k times faster than the wall clock: Now moves k seconds
// per second, Sleep(d) takes d/k. The link and the fake both run on it, so a
// benchmark sees minutes of polling in seconds through the real code path.
type scaledClock struct {
	start time.Time // wall time at base
	base  time.Time
	k     float64
}

func (c scaledClock) Now() time.Time {
	return c.base.Add(time.Duration(float64(time.Since(c.start)) * c.k))
}

func (c scaledClock) Sleep(ctx context.Context, d time.Duration) error {
	return clock.Real{}.Sleep(ctx, time.Duration(float64(d)/c.k))
}

// BenchmarkCommandLatency measures, on the fake, the time from a viewer's
// command (a status message) reaching the server to the board's reply
// reaching it, both as the fake's clock saw them: the poll's wait plus two
// requests. The link and the fake run on a clock 50 times faster than the
// wall clock, with the production intervals (poll 10 s, poll_fast 2 s for
// 1 min). Cases:
//
//   - idle: each command comes over a minute after the last one, at a
//     random point of the 10 s poll (what every command waited before);
//   - active: commands 1 to 8 s apart, at the server's default limit of 50
//     requests a minute, where the budget raises poll_fast to 4 s;
//   - active-100rpm: the same with the account's limit at 100 a minute, so
//     poll_fast is 2 s.
//
// It reports the median and the 90th percentile in seconds of the fake's
// clock (s-median, s-p90); ns/op is wall time and means nothing here. Run:
//
//	go test -run '^$' -bench CommandLatency -benchtime 40x ./transport/camserver/
func BenchmarkCommandLatency(b *testing.B) {
	for _, bc := range []struct {
		name   string
		active bool
		perMin float64 // the account's requests a minute; 0: the server default (50)
	}{{"idle", false, 0}, {"active", true, 0}, {"active-100rpm", true, 100}} {
		b.Run(bc.name, func(b *testing.B) {
			clk := scaledClock{start: time.Now(), base: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), k: 50}
			srv, err := camservertest.New("127.0.0.1:0", camservertest.Options{Now: clk.Now})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.Close() })
			if bc.perMin > 0 {
				srv.SetLimit(4, bc.perMin, false)
			}
			sent, replied := make(chan time.Time, 1), make(chan time.Time, 1)
			srv.SetRequestHook(func(path, dev string, at time.Time) {
				if path != "/addMsgs.json" {
					return
				}
				if dev == device {
					replied <- at
				} else {
					sent <- at
				}
			})
			r := startRig(b, rigOpts{srv: srv, clock: clk, cfg: func(c *camserver.Config) {
				c.Stream.Sensor = ""
				c.Poll, c.PollFast, c.PollFastFor, c.Heartbeat = 0, 0, 0, 0
				c.SetDefaults()
				c.Commands.PerMinute = 60
			}})
			agenttest.Eventually(b, "the first poll", func() bool { return r.polls() > 0 })
			op := operatorOn(b, srv, "viewer-app", clk)
			rnd := rand.New(rand.NewPCG(1, 2))
			command := func() time.Duration {
				if err := op.AddMsgs(context.Background(), camserver.Message{Msg: camserver.CmdStatus, Target: device}); err != nil {
					b.Fatal(err)
				}
				at := <-sent
				select {
				case done := <-replied:
					return done.Sub(at)
				case <-time.After(time.Minute): // 50 min on the fake's clock: a hang
					b.Fatal("no reply")
					return 0
				}
			}
			if bc.active {
				command() // from here on commands are in use
			}
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				quiet := time.Second + time.Duration(rnd.Int64N(int64(7*time.Second)))
				if !bc.active {
					quiet = time.Minute + time.Duration(rnd.Int64N(int64(10*time.Second)))
				}
				_ = clk.Sleep(context.Background(), quiet)
				lat = append(lat, command())
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(lat[len(lat)/2].Seconds(), "s-median")
			b.ReportMetric(lat[len(lat)*9/10].Seconds(), "s-p90")
		})
	}
}
