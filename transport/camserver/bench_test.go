package camserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/camserver/frame"
)

// pushRig is a fake server plus an authorized session id for raw pushing.
type pushRig struct {
	srv   *camservertest.Server
	shash string
	tls   *tls.Config
	u     *url.URL
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
	return &pushRig{srv: srv, shash: sh, tls: tc, u: u}
}

func (r *pushRig) url() string {
	u := r.u.JoinPath("input.raw")
	u.RawQuery = url.Values{"shash": {r.shash}, "subproto": {"RAW_JPEG"}, "delta": {"400"}}.Encode()
	return u.String()
}

func (r *pushRig) waitFrames(tb testing.TB, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for r.srv.Stats().Frames < n {
		if time.Now().After(deadline) {
			tb.Fatalf("server got %d of %d frames", r.srv.Stats().Frames, n)
		}
		time.Sleep(time.Millisecond)
	}
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
	base := r.srv.Stats().Frames
	for range n {
		if err := body.Push(ctx, f); err != nil {
			tb.Fatal(err)
		}
	}
	r.waitFrames(tb, base+n)
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
	base := r.srv.Stats().Frames
	for range n {
		if _, err := pw.Write(f); err != nil {
			tb.Fatal(err)
		}
	}
	r.waitFrames(tb, base+n)
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

// TestPushRSS pushes 1 GB through the link's path and reports the process's
// peak RSS (client and in-process fake server together). Opt-in:
// CAMSERVER_RSS=1 go test -run TestPushRSS -v ./transport/camserver/
func TestPushRSS(t *testing.T) {
	if os.Getenv("CAMSERVER_RSS") == "" {
		t.Skip("set CAMSERVER_RSS=1 to push 1 GB and report peak RSS")
	}
	for _, mode := range []string{"h2c", "tls"} {
		r := newPushRig(t, mode == "tls")
		payload := make([]byte, 100_000)
		f, _ := frame.Encode(payload)
		n := 1_000_000_000 / len(payload)
		before := vmHWM(t)
		start := time.Now()
		pushAgent(t, r, f, n)
		el := time.Since(start)
		t.Logf("%s: pushed %d frames of %d B (1 GB) in %v (%.0f MB/s); peak RSS before %d kB, after %d kB",
			mode, n, len(payload), el.Round(time.Millisecond), 1000/el.Seconds(), before, vmHWM(t))
	}
}

func vmHWM(t *testing.T) int {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
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
