package iio

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// TestBufferedJitterIsNotLoss is defect 5 of issue 12 on the fake tree:
// every tenth report arrives 6 ms late at 100 Hz. All rows are there, so
// nothing is lost and Seq has no gap (the old per-gap rule counted 30 of 300
// lost).
func TestBufferedJitterIsNotLoss(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "accel_3d", Accel: true, Scale: "1", Buffered: true})
	w := ft.writer(t, 0)
	defer w.Close()
	src, err := NewSource("accel", Config{Frequencies: []float64{100}, Mode: "buffered"}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
	if err != nil {
		t.Fatal(err)
	}
	// 300 rows, and a horizon more so that every one of them is judged.
	const n = 300 + 150
	var stream []byte
	for i := range n {
		ts := 7_000_000_000 + int64(i)*10_000_000
		if i%10 == 9 {
			ts += 6_000_000
		}
		stream = append(stream, scan(int16(i), 0, 0, ts)...)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); writeChunks(t, w, stream) }()
	defer wg.Wait()
	got, err := collect(t, src, n)
	if err != nil || len(got) != n {
		t.Fatalf("Run: %v, %d rows", err, len(got))
	}
	for i, s := range got {
		if s.Seq != uint64(i) {
			t.Fatalf("row %d has Seq %d: a late row was counted as loss", i, s.Seq)
		}
	}
	if src.Lost() != 0 {
		t.Fatalf("Lost() = %d, want 0", src.Lost())
	}
}

// feeder writes 400 Hz scans with value v to w about once a millisecond
// until stopped.
type feeder struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func feed(w *os.File, v int16) *feeder {
	f := &feeder{stop: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for i := int64(0); ; i++ {
			select {
			case <-f.stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := w.Write(scan(v, v, v, 1e9+i*2_500_000)); err != nil {
				return
			}
		}
	}()
	return f
}

func (f *feeder) halt() { close(f.stop); f.wg.Wait() }

// TestBufferedDeviceRemoved is defect 2 of issue 12 on the fake tree: the
// device is unregistered while buffered capture runs, and the reader sees no
// EOF (the old FIFO keeps a writer, as an unregistered IIO buffer keeps a
// poll that reports nothing). Run must notice, end with an error, and the
// hub's restart must find the device again by name, whether it comes back
// under another index or under the same one.
func TestBufferedDeviceRemoved(t *testing.T) {
	for _, tc := range []struct {
		name string
		back int // index the device comes back under
	}{
		{name: "back as iio:device1", back: 1},
		{name: "back under the same index", back: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := newTree(t)
			dev := fakeDev{Name: "accel_3d", Accel: true, Scale: "1", Buffered: true}
			ft.add(t, dev)
			w0 := ft.writer(t, 0)
			defer w0.Close() // held open to the end: no EOF for the reader
			src, err := NewSource("accel", Config{Device: "accel_3d", Frequencies: []float64{400}}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
			if err != nil {
				t.Fatal(err)
			}
			src.presenceEvery = 20 * time.Millisecond
			h := hub.New(hub.Options{Restart: retry.Policy{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}})
			defer h.Close()
			if err := h.Add(src); err != nil {
				t.Fatal(err)
			}
			sub, err := h.Subscribe("accel", sensors.SubscribeOptions{Queue: 64, Policy: sensors.DropOldest})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			f0 := feed(w0, 1)
			waitValue(t, sub, 1)
			f0.halt()

			must(t, ft.Remove(0))
			dev.Index = tc.back
			ft.add(t, dev)
			w1 := ft.writer(t, tc.back)
			defer w1.Close()
			f1 := feed(w1, 2)
			defer f1.halt()
			waitValue(t, sub, 2)
			if st := h.Stats()[0]; st.Restarts < 1 {
				t.Fatalf("restarts %d, want the source restarted after the loss", st.Restarts)
			}
		})
	}
}

// waitValue reads the subscription until a row with value v arrives.
func waitValue(t *testing.T, sub sensors.Subscription, v float64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-sub.C():
			if s.Values[0] == v {
				return
			}
		case <-deadline:
			t.Fatalf("no row with value %g within 10 s", v)
		}
	}
}

// TestBufferedRemovedDirectRun: without the hub, Run itself returns an
// error naming the loss soon after the device is unregistered.
func TestBufferedRemovedDirectRun(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "accel_3d", Accel: true, Scale: "1", Buffered: true})
	w := ft.writer(t, 0)
	defer w.Close()
	src, _ := NewSource("accel", Config{Frequencies: []float64{400}}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
	src.presenceEvery = 20 * time.Millisecond
	errc := make(chan error, 1)
	go func() { errc <- src.Run(context.Background(), make(chan sensors.Sample, 1024)) }()
	time.Sleep(50 * time.Millisecond)
	must(t, ft.Remove(0))
	select {
	case err := <-errc:
		if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "gone") {
			t.Fatalf("Run = %v, want device gone (not exist)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waiting 10 s after the device was unregistered")
	}
}

// serveAttr plays a driver behind a FIFO attribute: it answers the first
// read (Discover) with first, takes one write, and answers the next read
// with readBack. It returns what was written.
func serveAttr(t *testing.T, path, first, readBack string) <-chan string {
	t.Helper()
	if err := mkfifo(path); err != nil {
		t.Fatal("mkfifo:", err)
	}
	written := make(chan string, 1)
	go func() {
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			_, _ = f.WriteString(first + "\n")
			_ = f.Close()
		}
		f, err := os.Open(path)
		if err != nil {
			written <- err.Error()
			return
		}
		b := make([]byte, 64)
		n, _ := f.Read(b)
		_ = f.Close()
		written <- string(b[:n])
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			_, _ = f.WriteString(readBack + "\n")
			_ = f.Close()
		}
	}()
	return written
}

// TestPermanentMismatches: configurations the device cannot serve fail at
// once with the reason, marked permanent so the hub does not retry them.
func TestPermanentMismatches(t *testing.T) {
	tests := []struct {
		name    string
		dev     fakeDev
		cfg     Config
		readBck string // sampling_frequency served by a fake driver: it reads back this
		want    string
	}{
		{name: "fastest listed rate too slow", dev: fakeDev{Name: "adxl345", Accel: true, Scale: "1", Freq: "50", Available: "12.5 25 50"},
			cfg: Config{Frequencies: []float64{100}, Mode: "poll"}, want: "cannot run at 100 Hz: its fastest rate is 50 Hz"},
		{name: "driver runs the chip slower than asked", dev: fakeDev{Name: "accel_3d", Accel: true, Scale: "1"},
			cfg: Config{Frequencies: []float64{100}, Mode: "poll"}, readBck: "50", want: "cannot run at 100 Hz: asked for 100 Hz, the driver set 50 Hz"},
		{name: "named device has no accelerometer", dev: fakeDev{Name: "gyro"},
			cfg: Config{Device: "gyro"}, want: "no accel_x/y/z channels"},
		{name: "scan type the decoder cannot read", dev: fakeDev{Name: "odd", Accel: true, Scale: "1", Buffered: true, Types: [4]string{"le:s16/24>>0"}},
			cfg: Config{Frequencies: []float64{200}, Mode: "buffered"}, want: "storage bits"},
		{name: "poll above 100 Hz without a buffer", dev: fakeDev{Name: "adxl345", Accel: true, Scale: "1"},
			cfg: Config{Frequencies: []float64{200}}, want: "needs buffered capture"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := newTree(t)
			dir := ft.add(t, tc.dev)
			if tc.readBck != "" {
				written := serveAttr(t, filepath.Join(dir, "sampling_frequency"), "100", tc.readBck)
				defer func() {
					select {
					case <-written:
					case <-time.After(5 * time.Second):
						t.Error("the fake driver never saw the rate written")
					}
				}()
			}
			src, err := NewSource("accel", tc.cfg, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
			if err != nil {
				t.Fatal(err)
			}
			err = src.Run(context.Background(), make(chan sensors.Sample))
			if !retry.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v; want a permanent error saying %q", err, tc.want)
			}
		})
	}
}

// TestWriteAttrError: the failed write is named once ("write X: errno"),
// not "write X: write X: …", and keeps its errno.
func TestWriteAttrError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sampling_frequency")
	must(t, os.Mkdir(p, 0o755)) // opening a directory for writing fails
	err := writeAttr(p, "100")
	if err == nil {
		t.Fatal("write to a directory succeeded")
	}
	if got, want := err.Error(), "write "+p+": is a directory"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	err = writeAttr(filepath.Join(p, "missing"), "1")
	if !errors.Is(err, fs.ErrNotExist) || strings.Count(err.Error(), "missing") != 1 {
		t.Fatalf("error %v: want the path once and ErrNotExist", err)
	}
}

// TestPollLateTicksAreNotLost: ticks served late (stalls of 60 and 400 ms,
// less than the catch-up limit) still get their own reading, so no row is
// lost and Seq has no gap; only a stall beyond the limit skips ticks
// (TestPollStall).
func TestPollLateTicksAreNotLost(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "adxl345", Accel: true, Scale: "1"})
	clk := &workClock{now: time.Unix(1000, 0), jumps: map[int]time.Duration{30: 60 * time.Millisecond, 90: 400 * time.Millisecond}}
	src, err := NewSource("accel", Config{Frequencies: []float64{100}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, src, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		if s.Seq != uint64(i) {
			t.Fatalf("row %d has Seq %d", i, s.Seq)
		}
	}
	if src.Lost() != 0 {
		t.Fatalf("Lost() = %d, want 0", src.Lost())
	}
}
