package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/faultproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo is an upstream that echoes every byte; Close waits for its handlers.
type echo struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(faultproxy.Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads the echo back within the test's patience.
func roundTrip(c net.Conn, msg []byte) ([]byte, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	if werr := <-errc; err == nil {
		err = werr
	}
	return got, err
}

func TestPassThrough(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, more than the queue holds
	tests := []struct {
		name string
		msg  []byte
	}{
		{"small", []byte("hello")},
		{"1 MiB", big},
	}
	e := newEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, p)
			got, err := roundTrip(c, tc.msg)
			if err != nil || !bytes.Equal(got, tc.msg) {
				t.Fatalf("round trip: err %v, equal %v", err, bytes.Equal(got, tc.msg))
			}
		})
	}
	// The counters settle once the writers returned (the client may read
	// the last bytes a moment before).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s := p.Stats()
		if s.BytesUp >= int64(len(big)) && s.BytesDown >= int64(len(big)) && s.Held == 0 && s.Dropped == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s)
		}
	}
}

// TestSlow checks the added delay as lower bounds only (the machine may be
// slower, never faster than the proxy allows).
func TestSlow(t *testing.T) {
	tests := []struct {
		name    string
		latency time.Duration
		bps     int64
		size    int
		atLeast time.Duration
	}{
		{"latency", 80 * time.Millisecond, 0, 10, 160 * time.Millisecond}, // both directions
		{"bandwidth", 0, 64 << 10, 32 << 10, 400 * time.Millisecond},      // 32 KiB each way at 64 KiB/s
		{"both", 30 * time.Millisecond, 128 << 10, 16 << 10, 60 * time.Millisecond},
	}
	e := newEcho(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, e.ln.Addr().String())
			p.Slow(tc.latency, tc.bps)
			c := dial(t, p)
			msg := bytes.Repeat([]byte{'x'}, tc.size)
			start := time.Now()
			got, err := roundTrip(c, msg)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("round trip: %v", err)
			}
			if d := time.Since(start); d < tc.atLeast {
				t.Errorf("round trip took %v, want ≥ %v", d, tc.atLeast)
			}
			p.Slow(0, 0)
			if _, err := roundTrip(c, msg); err != nil {
				t.Fatalf("after clearing: %v", err)
			}
		})
	}
}

// stalledConn is a connection through a proxy to an echo server that carried
// one round trip ("warm", 4 bytes up), then had the proxy stalled and held
// written to it.
func stalledConn(t *testing.T, held string) (*faultproxy.Proxy, net.Conn) {
	t.Helper()
	e := newEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	c := dial(t, p)
	if _, err := roundTrip(c, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	p.Stall(true)
	if _, err := c.Write([]byte(held)); err != nil {
		t.Fatal(err)
	}
	return p, c
}

func TestStall(t *testing.T) {
	p, c := stalledConn(t, "held")
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	n, err := c.Read(make([]byte, 4))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read during stall: n=%d err=%v, want a timeout with nothing and no close", n, err)
	}
	// A connection opened during the stall is accepted but silent too.
	c2 := dial(t, p)
	if _, err := c2.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Active != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("active %d during stall, want 2 (nothing closed)", p.Stats().Active)
		}
	}
	p.Stall(false)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after stall: %q %v", got, err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	got = make([]byte, 3)
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != "new" {
		t.Fatalf("second conn after stall: %q %v", got, err)
	}
}

func TestEndConnections(t *testing.T) {
	tests := []struct {
		name    string
		end     func(p *faultproxy.Proxy) int
		wantErr func(err error) bool
	}{
		{"reset", (*faultproxy.Proxy).Reset, func(err error) bool { return errors.Is(err, syscall.ECONNRESET) }},
		{"cut", (*faultproxy.Proxy).Cut, func(err error) bool { return errors.Is(err, io.EOF) }},
	}
	e := newEcho(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, e.ln.Addr().String())
			c := dial(t, p)
			if _, err := roundTrip(c, []byte("up")); err != nil {
				t.Fatal(err)
			}
			if n := tc.end(p); n != 1 {
				t.Fatalf("ended %d connections, want 1", n)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := c.Read(make([]byte, 1))
			if !tc.wantErr(err) {
				t.Fatalf("read after %s: %v", tc.name, err)
			}
			// The proxy still serves new connections.
			c2 := dial(t, p)
			if _, err := roundTrip(c2, []byte("again")); err != nil {
				t.Fatalf("new connection after %s: %v", tc.name, err)
			}
		})
	}
}

func TestRefuseAndRetarget(t *testing.T) {
	e1, e2 := newEcho(t), newEcho(t)
	p := newProxy(t, e1.ln.Addr().String())
	p.Refuse(true)
	if err := readErr(p); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("refused connection: %v, want reset", err)
	}
	p.Refuse(false)
	p.SetTarget(e2.ln.Addr().String())
	if _, err := roundTrip(dial(t, p), []byte("to e2")); err != nil {
		t.Fatal(err)
	}
	e2.mu.Lock()
	n := len(e2.conns)
	e2.mu.Unlock()
	if n != 1 {
		t.Fatalf("second upstream got %d connections", n)
	}
	// An upstream that is gone: the client is reset, the dial error counted.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := dead.Addr().String()
	dead.Close()
	p.SetTarget(addr)
	if err := readErr(p); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection through a proxy whose target is down: %v, want reset", err)
	}
	if s := p.Stats(); s.DialErrors != 1 || s.Refused != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// readErr dials p and reads one byte, returning the error of whichever step
// failed (on loopback the proxy's RST may beat the dial's return).
func readErr(p *faultproxy.Proxy) error {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestCloseWaits(t *testing.T) {
	e := newEcho(t)
	p, err := faultproxy.New(faultproxy.Options{Target: e.ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	p.Stall(true)
	_, _ = c.Write([]byte("stuck"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	// goleak in TestMain checks every goroutine ended.
}

func TestNewRejects(t *testing.T) {
	if _, err := faultproxy.New(faultproxy.Options{}); err == nil {
		t.Fatal("no target accepted")
	}
	if _, err := faultproxy.New(faultproxy.Options{Target: "x", Listen: "256.0.0.1:0"}); err == nil {
		t.Fatal("bad listen address accepted")
	}
}

// BenchmarkRoundTrip compares 64 KiB echo round trips direct and through a
// clean proxy (no faults): the proxy's own cost when it is idle in a test.
func BenchmarkRoundTrip(b *testing.B) {
	for _, via := range []string{"direct", "proxy"} {
		b.Run(via, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
			addr := ln.Addr().String()
			var p *faultproxy.Proxy
			if via == "proxy" {
				if p, err = faultproxy.New(faultproxy.Options{Target: addr}); err != nil {
					b.Fatal(err)
				}
				addr = p.Addr()
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			msg := bytes.Repeat([]byte{'x'}, 64<<10)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for range b.N {
				if _, err := roundTrip(c, msg); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = c.Close()
			if p != nil {
				_ = p.Close()
			}
			_ = ln.Close()
			wg.Wait()
		})
	}
}

// TestDroppedCounted: bytes held by a stall when the connection is reset are
// counted as dropped, not silently lost.
func TestDroppedCounted(t *testing.T) {
	p, _ := stalledConn(t, "0123456789")
	// The stalled proxy reads the bytes into its queue, then holds them.
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Held != 10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", p.Stats())
		}
	}
	if n := p.Reset(); n != 1 {
		t.Fatalf("reset %d connections", n)
	}
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Dropped < 10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %d bytes, want 10 (stats %+v)", p.Stats().Dropped, p.Stats())
		}
	}
	if s := p.Stats(); s.Resets != 1 || s.BytesUp != 4 || s.Held != 0 {
		t.Fatalf("stats %+v", s)
	}
}
