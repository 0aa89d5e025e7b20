package serial

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// board is a fake Arduino on the master side of a pty. The source opens the
// slave through a symlink, as production opens /dev/serial/by-id/…, so a
// "replug" (new pty) only re-points the link.
type board struct {
	master *os.File
	link   string
}

func newBoard(t *testing.T, link string) *board {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skip("needs a pseudo-terminal (/dev/ptmx on a devpts mount):", err)
	}
	name := slave.Name()
	_ = slave.Close()
	_ = os.Remove(link)
	if err := os.Symlink(name, link); err != nil {
		t.Fatal(err)
	}
	return &board{master: master, link: link}
}

// play writes line(i) for i = 0, 1, … in bursts of `burst` lines (USB
// buffering): a burst goes out when its last line is due on the grid
// start + (i+1)/rate. It runs until stop is closed or the master fails. It
// wakes once per burst, not per line, so an emulated writer (qemu-user)
// holds 1 kHz in 16-line bursts too.
func (b *board) play(stop <-chan struct{}, rate float64, burst int, line func(i int) string) {
	start := time.Now()
	burst = max(burst, 1)
	var pending strings.Builder
	for i := 0; ; {
		for range burst {
			pending.WriteString(line(i))
			i++
		}
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		select {
		case <-stop:
			return
		case <-time.After(time.Until(due)):
		}
		if _, err := b.master.Write([]byte(pending.String())); err != nil {
			return
		}
		pending.Reset()
	}
}

// openedSignal returns a logger whose handler closes the channel when the
// source logs that the port is open (raw mode set, stale input flushed), so
// a paced writer starts only once nothing can block it.
func openedSignal() (*slog.Logger, <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	h := &msgHandler{msg: "serial port opened", fn: func() { once.Do(func() { close(ch) }) }}
	return slog.New(h), ch
}

type msgHandler struct {
	msg string
	fn  func()
}

func (h *msgHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *msgHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.fn()
	}
	return nil
}
func (h *msgHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *msgHandler) WithGroup(string) slog.Handler      { return h }

// run starts src and returns its output and a wait function for the error.
func run(ctx context.Context, src sensors.Source, queue int) (<-chan sensors.Sample, func() error) {
	out := make(chan sensors.Sample, queue)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	return out, func() error { return <-errc }
}

func xyz(i int) string { return fmt.Sprintf("%d,%d,%d\n", i, 2*i, -i) }

func TestDetectRateAndAxes(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		burst int
	}{
		{name: "100 Hz line by line", rate: 100, burst: 1},
		{name: "400 Hz in 8-line bursts", rate: 400, burst: 8},
		{name: "1000 Hz in 16-line bursts", rate: 1000, burst: 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBoard(t, filepath.Join(t.TempDir(), "ttyACM"))
			defer b.master.Close()
			log, opened := openedSignal()
			src, err := NewSource("board", Config{Port: b.link}, sensors.Env{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out, wait := run(ctx, src, 256)
			select {
			case <-opened:
			case <-time.After(10 * time.Second):
				t.Fatal("port not opened")
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); b.play(stop, tc.rate, tc.burst, xyz) }()
			defer func() { close(stop); wg.Wait() }()

			var n int
			prevSeq := -1
			deadline := time.After(20 * time.Second)
			for src.Info().Rate == 0 {
				select {
				case s := <-out:
					n++
					if len(s.Values) != 3 || s.Values[1] != 2*s.Values[0] || s.Values[2] != -s.Values[0] {
						t.Fatalf("row %v does not match what the board printed", s.Values)
					}
					if int(s.Seq) != prevSeq+1 {
						t.Fatalf("seq %d after %d", s.Seq, prevSeq)
					}
					prevSeq = int(s.Seq)
				case <-deadline:
					t.Fatal("rate not detected")
				}
			}
			info := src.Info()
			if math.Abs(info.Rate-tc.rate)/tc.rate > 0.02 {
				t.Errorf("detected %g Hz, board runs at %g Hz", info.Rate, tc.rate)
			}
			if strings.Join(info.Axes, ",") != "axis0,axis1,axis2" {
				t.Errorf("axes %v", info.Axes)
			}
			cancel()
			if err := wait(); err != nil {
				t.Fatalf("Run after cancel: %v", err)
			}
			if n == 0 || src.Malformed() != 0 {
				t.Fatalf("%d rows, %d malformed", n, src.Malformed())
			}
		})
	}
}

func TestMalformedLines(t *testing.T) {
	b := newBoard(t, filepath.Join(t.TempDir(), "ttyUSB"))
	defer b.master.Close()
	src, err := NewSource("board", Config{Port: b.link, Axes: []string{"x", "y", "z"}, Units: "g", Frequency: 50}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, wait := run(ctx, src, 256)
	bad := []string{
		"x,y,z\n",                             // header
		"1,2\n",                               // too few
		"1,2,3,4\n",                           // too many
		"1,two,3\n",                           // not a number
		strings.Repeat("9", 3*MaxLine) + "\n", // over-long
		"\x00\xff\xfe\n",                      // line noise
	}
	// The first line after open may be cut, so the board keeps printing a
	// good line, then all the bad ones, until the test sees the marker row.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.play(stop, 200, 1, func(i int) string {
			if i%2 == 0 {
				return xyz(i)
			}
			return strings.Join(bad, "") + "\n" // blank line: ignored
		})
	}()
	defer func() { close(stop); wg.Wait() }()
	var rows []sensors.Sample
	for len(rows) < 20 {
		select {
		case s := <-out:
			rows = append(rows, s)
		case <-time.After(20 * time.Second):
			t.Fatal("no rows")
		}
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if int(r.Values[0])%2 != 0 || r.Values[1] != 2*r.Values[0] {
			t.Fatalf("bad row got through: %v", r.Values)
		}
	}
	// Each good row after the first is preceded by one batch of bad lines.
	m := src.Malformed()
	if m < uint64(len(bad))*19 {
		t.Fatalf("malformed = %d, want >= %d", m, len(bad)*19)
	}
	info := src.Info()
	if info.Rate != 50 || strings.Join(info.Axes, ",") != "x,y,z" || info.Units != "g" || len(info.Frequencies) != 1 {
		t.Fatalf("info %+v", info)
	}
}

// TestUnplugReplug: closing the master is the board going away; Run returns
// an error. A new pty behind the same path is the board coming back; the
// next Run (the hub's restart) delivers data again.
func TestUnplugReplug(t *testing.T) {
	link := filepath.Join(t.TempDir(), "by-id-usb-Arduino")
	b := newBoard(t, link)
	src, err := NewSource("board", Config{Port: link, Frequency: 100}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		out, wait := run(ctx, src, 256)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); b.play(stop, 200, 1, xyz) }()
		select {
		case s := <-out:
			if len(s.Values) != 3 {
				t.Fatalf("round %d: row %v", round, s.Values)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: no data", round)
		}
		close(stop)
		wg.Wait()
		_ = b.master.Close() // unplug
		if err := drainUntilDone(out, wait); err == nil {
			t.Fatalf("round %d: Run returned nil after unplug", round)
		}
		cancel()
		if round == 0 {
			// While unplugged the port cannot be opened.
			_ = os.Remove(link)
			if err := src.Run(context.Background(), make(chan sensors.Sample)); err == nil {
				t.Fatal("Run on a missing port returned nil")
			}
			b = newBoard(t, link) // replug
		}
	}
}

// drainUntilDone discards rows until Run returns, and returns its error.
func drainUntilDone(out <-chan sensors.Sample, wait func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- wait() }()
	for {
		select {
		case <-out:
		case err := <-errc:
			return err
		}
	}
}

// TestHubRecoversAfterReplug: the production path. The hub runs the source;
// unplugging makes Run fail, the hub retries with backoff while the port is
// missing, and rows flow again once the board is back.
func TestHubRecoversAfterReplug(t *testing.T) {
	link := filepath.Join(t.TempDir(), "by-id-usb-board")
	b := newBoard(t, link)
	src, err := NewSource("board", Config{Port: link, Frequency: 100}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Options{Restart: retry.Policy{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond}})
	defer h.Close()
	if err := h.Add(src); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("board", sensors.SubscribeOptions{Queue: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	await := func(what string, tag float64) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case s := <-sub.C():
				if s.Values[2] == tag {
					return
				}
			case <-deadline:
				t.Fatalf("no rows %s", what)
			}
		}
	}
	for round, tag := range []float64{-1, -2} {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.play(stop, 200, 1, func(i int) string { return fmt.Sprintf("%d,0,%g\n", i, tag) })
		}()
		await(fmt.Sprintf("in round %d", round), tag)
		close(stop)
		wg.Wait()
		_ = b.master.Close() // unplug
		_ = os.Remove(link)
		if round == 0 {
			time.Sleep(50 * time.Millisecond) // a few failed reopen attempts
			b = newBoard(t, link)             // replug
		}
	}
}
