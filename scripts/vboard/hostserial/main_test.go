package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/sensors/serial/serialtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a feeder as the harness does and stops it at cleanup,
// checking that it stopped cleanly and removed its socket.
func start(t *testing.T) (socket, ctl string) {
	t.Helper()
	dir := t.TempDir()
	socket, ctl = filepath.Join(dir, "serial.sock"), filepath.Join(dir, "ctl")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &feeder{socket: socket, ctl: ctl, rate: 100, poll: 10 * time.Millisecond, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
		if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	return socket, ctl
}

// dial connects as qemu does, retrying (reconnect=1) until the socket
// accepts or the deadline passes.
func dial(t *testing.T, socket string, within time.Duration) net.Conn {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.Dial("unix", socket)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot connect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readLines reads n readings after the header and returns their counters
// and when the first and the last arrived.
func readLines(t *testing.T, r *bufio.Reader, n int) (counts []uint64, first, last time.Time) {
	t.Helper()
	for len(counts) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d readings: %v", len(counts), err)
		}
		if !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("line %q does not end in CRLF", line)
		}
		f := strings.Split(strings.TrimSuffix(line, "\r\n"), ",")
		if len(f) != serialtest.Axes {
			t.Fatalf("line %q has %d values, want %d", line, len(f), serialtest.Axes)
		}
		for _, v := range f[:2] {
			if x, err := strconv.ParseFloat(v, 64); err != nil || x < -1 || x > 1 {
				t.Fatalf("line %q: %q is not a sine/cosine value", line, v)
			}
		}
		c, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			t.Fatalf("line %q: counter %q", line, f[2])
		}
		counts = append(counts, c)
		if len(counts) == 1 {
			first = time.Now()
		}
		last = time.Now()
	}
	return counts, first, last
}

func expectHeader(t *testing.T, r *bufio.Reader) {
	t.Helper()
	h, err := r.ReadString('\n')
	if err != nil || h != serialtest.Header {
		t.Fatalf("first line %q (%v), want the header %q", h, err, serialtest.Header)
	}
}

// TestFeedsAndDrains: a connection gets the header, then readings at 100 Hz
// with consecutive counters, while everything the guest sends is drained
// (1 MiB here, far more than the socket buffers: a feeder that did not read
// would block this writer, and qemu with it).
func TestFeedsAndDrains(t *testing.T) {
	socket, _ := start(t)
	c := dial(t, socket, 10*time.Second)
	defer c.Close()
	wrote := make(chan error, 1)
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := c.Write(make([]byte, 1<<20))
		wrote <- err
	}()
	r := bufio.NewReader(c)
	expectHeader(t, r)
	counts, first, last := readLines(t, r, 120)
	for i := 1; i < len(counts); i++ {
		if counts[i] != counts[i-1]+1 {
			t.Fatalf("counter %d after %d: readings lost while the guest was reading", counts[i], counts[i-1])
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the guest's writes were not drained: %v", err)
	}
	// The board runs on its own clock (a grid), so only the reader's
	// scheduling blurs this; ±15 % keeps it about the pacing, not speed.
	rate := float64(counts[len(counts)-1]-counts[0]) / last.Sub(first).Seconds()
	if rate < 85 || rate > 115 {
		t.Fatalf("%.1f readings/s, want 100", rate)
	}
}

// TestUnplug: an unplug request drops the connection and removes the
// socket, so reconnects fail until it is over; then a reconnect gets a
// fresh board (the header again).
func TestUnplug(t *testing.T) {
	socket, ctl := start(t)
	c := dial(t, socket, 10*time.Second)
	defer c.Close()
	r := bufio.NewReader(c)
	expectHeader(t, r)
	readLines(t, r, 5)

	tmp := filepath.Join(ctl, ".unplug")
	if err := os.WriteFile(tmp, []byte("500ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(ctl, UnplugFile)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("connection not dropped: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ctl, UnplugFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the request was not removed: %v", err)
	}
	// The socket closed before the connection did.
	if c2, err := net.Dial("unix", socket); err == nil {
		c2.Close()
		t.Fatal("a reconnect succeeded during the unplug")
	}
	c3 := dial(t, socket, 10*time.Second)
	defer c3.Close()
	r3 := bufio.NewReader(c3)
	expectHeader(t, r3)
	if counts, _, _ := readLines(t, r3, 3); counts[0] > 50 {
		t.Fatalf("first reading after replug is %d, want a fresh board", counts[0])
	}
}

// TestRunStops: the command stops cleanly when its context ends (SIGTERM or
// SIGINT in main) and rejects bad usage.
func TestRunStops(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	codec := make(chan int, 1)
	var stderr strings.Builder
	go func() { codec <- run(ctx, []string{"-socket", socket}, &stderr) }()
	c := dial(t, socket, 10*time.Second)
	expectHeader(t, bufio.NewReader(c))
	cancel()
	if code := <-codec; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	c.Close()
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	for _, args := range [][]string{{}, {"-socket", socket, "extra"}, {"-socket", socket, "-rate", "0"}, {"-nope"}} {
		if code := run(context.Background(), args, io.Discard); code != 2 {
			t.Errorf("run %q: exit %d, want 2", args, code)
		}
	}
}

// TestStaleBacklogIsSmall: a guest that does not read (its port closed:
// qemu stops reading the socket) and then reads again gets at most about
// an FTDI's buffer of old readings, then live ones.
func TestStaleBacklogIsSmall(t *testing.T) {
	socket, _ := start(t)
	c := dial(t, socket, 10*time.Second)
	defer c.Close()
	r := bufio.NewReaderSize(c, 64)
	expectHeader(t, r)
	counts, _, _ := readLines(t, r, 1)
	time.Sleep(1500 * time.Millisecond) // 150 readings the guest does not read
	var stale int
	for prev := counts[0]; ; {
		next, _, _ := readLines(t, r, 1)
		if next[0] > prev+1 {
			break // the first reading after the board's drops: live again
		}
		prev = next[0]
		stale++
	}
	// 512 bytes are ~20 readings; the socket holds a few more.
	if stale > 60 {
		t.Fatalf("%d stale readings queued while the guest did not read", stale)
	}
	t.Logf("%d stale readings", stale)
}
