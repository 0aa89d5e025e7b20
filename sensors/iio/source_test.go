package iio

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/conf/conftest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// workClock is a fake clock whose Now advances by work on every call, so a
// poll loop "spends" time reading; Sleep advances by the requested duration.
// It lets a test show that pacing does not accumulate read time.
type workClock struct {
	mu    sync.Mutex
	now   time.Time
	work  time.Duration
	jumps map[int]time.Duration // extra advance on the n-th Now call (a stall)
	calls int
}

func (c *workClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.now = c.now.Add(c.work + c.jumps[c.calls])
	return c.now
}

func (c *workClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

// collect runs src until n samples arrived (then cancels) or it returns.
func collect(t *testing.T, src sensors.Source, n int) ([]sensors.Sample, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make(chan sensors.Sample, 16)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	var got []sensors.Sample
	for {
		select {
		case s := <-out:
			got = append(got, s)
			if len(got) == n {
				cancel()
				return got, <-errc
			}
		case err := <-errc:
			return got, err
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPollCapture(t *testing.T) {
	tests := []struct {
		name     string
		dev      fakeDev
		freq     float64
		wantRate float64
		want     []float64 // first row, m/s²
		wantFreq string    // sampling_frequency after open
	}{
		{name: "shared scale", dev: fakeDev{Name: "adxl345", Accel: true, Raw: [3]int64{10, -20, 256}, Scale: "0.0383", Freq: "100"},
			freq: 100, wantRate: 100, want: []float64{0.383, -0.766, 9.8048}, wantFreq: "100"},
		{name: "per-axis scale, offset, mount matrix", dev: fakeDev{Name: "lis3dh", Accel: true, Raw: [3]int64{100, 200, 300}, AxisScale: [3]string{"0.01", "0.02", "0.03"}, Offset: "-100", Mount: "0, -1, 0; 1, 0, 0; 0, 0, 1"},
			freq: 50, wantRate: 50, want: []float64{-2, 0, 6}},
		{name: "rate from available list", dev: fakeDev{Name: "bmi160", Accel: true, Raw: [3]int64{1, 1, 1}, Scale: "1", Freq: "25", Available: "25 50 100 200"},
			freq: 62.5, wantRate: 62.5, want: []float64{1, 1, 1}, wantFreq: "100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := newTree(t)
			dir := ft.add(t, tc.dev)
			clk := &workClock{now: time.Unix(1000, 0)}
			src, err := NewSource("accel", Config{Device: tc.dev.Name, Frequencies: []float64{tc.freq}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev}, WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			got, err := collect(t, src, 20)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(got) != 20 {
				t.Fatalf("got %d samples", len(got))
			}
			for i, s := range got {
				if s.Class != sensors.Motion || s.Seq != uint64(i) || len(s.Values) != 3 {
					t.Fatalf("sample %d: %+v", i, s)
				}
			}
			for i := range 3 {
				if math.Abs(got[0].Values[i]-tc.want[i]) > 1e-9 {
					t.Fatalf("values %v, want %v", got[0].Values, tc.want)
				}
			}
			period := time.Duration(float64(time.Second) / tc.wantRate)
			if d := got[19].Time.Sub(got[0].Time); d != 19*period {
				t.Fatalf("19 periods took %v on the fake clock, want %v", d, 19*period)
			}
			if r := src.Info().Rate; !near(r, tc.wantRate) {
				t.Fatalf("Info().Rate = %g, want %g", r, tc.wantRate)
			}
			if tc.wantFreq != "" {
				if f := get(t, filepath.Join(dir, "sampling_frequency")); f != tc.wantFreq {
					t.Fatalf("sampling_frequency = %q, want %q", f, tc.wantFreq)
				}
			}
		})
	}
}

// TestPollPacing: each tick spends 3 ms reading; rows must still sit on the
// start + n/rate grid (sleep-after-read would drift by 3 ms per row).
func TestPollPacing(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "adxl345", Accel: true, Scale: "1"})
	clk := &workClock{now: time.Unix(1000, 0), work: time.Millisecond}
	src, err := NewSource("accel", Config{Frequencies: []float64{100}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, src, 200)
	if err != nil {
		t.Fatal(err)
	}
	t0 := got[0].Time
	for i, s := range got {
		drift := s.Time.Sub(t0) - time.Duration(i)*10*time.Millisecond
		if drift < -5*time.Millisecond || drift > 5*time.Millisecond {
			t.Fatalf("row %d is %v off the grid", i, drift)
		}
	}
}

// TestPollStall: a 3 s stall (swapped out) skips the missed ticks, counts
// them and advances Seq, instead of bursting 300 rows read long after their
// time. (Shorter delays are caught up: TestPollLateTicksAreNotLost.)
func TestPollStall(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "adxl345", Accel: true, Scale: "1"})
	clk := &workClock{now: time.Unix(1000, 0), jumps: map[int]time.Duration{30: 3 * time.Second}}
	src, err := NewSource("accel", Config{Frequencies: []float64{100}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, src, 30)
	if err != nil {
		t.Fatal(err)
	}
	var jump uint64
	for i := 1; i < len(got); i++ {
		if d := got[i].Seq - got[i-1].Seq; d > 1 {
			jump += d - 1
		}
	}
	if jump < 290 || jump > 301 || src.Lost() != jump {
		t.Fatalf("Seq skipped %d rows, Lost() = %d; want ~300 and equal", jump, src.Lost())
	}
}

func TestPollBadData(t *testing.T) {
	tests := []struct {
		name    string
		garbage int // rows of garbage before good data returns
		wantErr bool
		wantBad uint64
		minGood int
	}{
		{name: "one torn read is skipped", garbage: 1, wantBad: 1, minGood: 5},
		{name: "persistent garbage fails the run", garbage: -1, wantErr: true, wantBad: maxBadReads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := newTree(t)
			dir := ft.add(t, fakeDev{Name: "adxl345", Accel: true, Scale: "1", Raw: [3]int64{5, 5, 5}})
			xraw := filepath.Join(dir, "in_accel_x_raw")
			put(t, xraw, "not-a-number")
			clk := clock.NewFake(time.Unix(1000, 0))
			n := 0
			clk.OnSleep = func(time.Duration) {
				n++
				if tc.garbage >= 0 && n == tc.garbage {
					put(t, xraw, "7")
				}
			}
			src, err := NewSource("accel", Config{Frequencies: []float64{100}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys}, WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			got, err := collect(t, src, max(tc.minGood, 1))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Run err = %v, wantErr %v", err, tc.wantErr)
			}
			if src.BadReads() != tc.wantBad {
				t.Fatalf("BadReads = %d, want %d", src.BadReads(), tc.wantBad)
			}
			if len(got) < tc.minGood {
				t.Fatalf("got %d good rows, want >= %d", len(got), tc.minGood)
			}
			if tc.minGood > 0 && got[0].Values[0] != 7 {
				t.Fatalf("first good row %v", got[0].Values)
			}
		})
	}
}

func TestPollDeviceGone(t *testing.T) {
	ft := newTree(t)
	dir := ft.add(t, fakeDev{Name: "adxl345", Accel: true, Scale: "1"})
	clk := clock.NewFake(time.Unix(1000, 0))
	n := 0
	clk.OnSleep = func(time.Duration) {
		if n++; n == 50 {
			_ = os.Remove(filepath.Join(dir, "name")) // unbound driver
		}
	}
	src, err := NewSource("accel", Config{Frequencies: []float64{100}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, src, 10_000)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run err = %v, want device gone", err)
	}
	if len(got) < 49 || len(got) > 200 {
		t.Fatalf("got %d rows before the loss was noticed", len(got))
	}
	// Device back (driver rebound): a new Run works.
	put(t, filepath.Join(dir, "name"), "adxl345")
	if got, err := collect(t, src, 5); err != nil || len(got) != 5 {
		t.Fatalf("after rebind: %d rows, err %v", len(got), err)
	}
}

func TestModeErrors(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "adxl345", Accel: true, Scale: "1"}) // no buffer support
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "buffered without scan_elements", cfg: Config{Frequencies: []float64{100}, Mode: "buffered"}},
		{name: "auto above poll limit", cfg: Config{Frequencies: []float64{400}, Mode: "auto"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewSource("accel", tc.cfg, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
			if err != nil {
				t.Fatal(err)
			}
			err = src.Run(context.Background(), make(chan sensors.Sample))
			if !retry.IsPermanent(err) {
				t.Fatalf("Run err = %v, want permanent", err)
			}
		})
	}
	src, _ := NewSource("accel", Config{Device: "bmi160"}, sensors.Env{SysRoot: ft.sys})
	if err := src.Run(context.Background(), make(chan sensors.Sample)); !errors.Is(err, ErrNoDevice) || retry.IsPermanent(err) {
		t.Fatalf("missing device: %v, want retryable ErrNoDevice", err)
	}
}

// writeChunks writes b in uneven chunks, splitting scans as a pipe may.
func writeChunks(t *testing.T, w io.Writer, b []byte) {
	t.Helper()
	sizes := []int{5, 16, 27, 3, 40, 1}
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		if _, err := w.Write(b[:n]); err != nil {
			t.Error(err)
			return
		}
		b = b[n:]
	}
}

func TestBufferedCapture(t *testing.T) {
	for _, buffer0 := range []bool{false, true} {
		name := "legacy buffer/ + scan_elements/"
		if buffer0 {
			name = "buffer0/"
		}
		t.Run(name, func(t *testing.T) {
			ft := newTree(t)
			dir := ft.add(t, fakeDev{Name: "mpu6050", Accel: true, Scale: "0.5", Freq: "100", Available: "50 100 200 400", Buffered: true, Buffer0: buffer0})
			ctl, scanDir := filepath.Join(dir, "buffer"), filepath.Join(dir, "scan_elements")
			if buffer0 {
				ctl, scanDir = filepath.Join(dir, "buffer0"), filepath.Join(dir, "buffer0")
			}
			w := ft.writer(t, 0)
			defer w.Close()
			src, err := NewSource("accel", Config{Device: "mpu6050", Frequencies: []float64{400}}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
			if err != nil {
				t.Fatal(err)
			}
			// 3 scans lost after row 50; the loss is confirmed once a
			// horizon (1 s = 400 rows) of rows followed the gap.
			const n = 500
			const period = int64(2_500_000) // 400 Hz in ns
			var stream []byte
			for i := range n {
				ts := 5_000_000_000 + int64(i)*period
				if i >= 50 {
					ts += 3 * period // kernel FIFO overflow: 3 scans lost
				}
				stream = append(stream, scan(int16(i), int16(-i), 2, ts)...)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan sensors.Sample, n)
			errc := make(chan error, 1)
			go func() { errc <- src.Run(ctx, out) }()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); writeChunks(t, w, stream) }()
			var got []sensors.Sample
			for len(got) < n {
				select {
				case s := <-out:
					got = append(got, s)
				case err := <-errc:
					t.Fatalf("Run ended early: %v", err)
				}
			}
			wg.Wait()
			// While running: the sysfs writes landed.
			checks := map[string]string{
				filepath.Join(ctl, "enable"):                  "1",
				filepath.Join(ctl, "length"):                  "800",
				filepath.Join(ctl, "watermark"):               "40",
				filepath.Join(scanDir, "in_accel_x_en"):       "1",
				filepath.Join(scanDir, "in_timestamp_en"):     "1",
				filepath.Join(scanDir, "in_temp_en"):          "0",
				filepath.Join(dir, "sampling_frequency"):      "400",
				filepath.Join(dir, "current_timestamp_clock"): "monotonic",
			}
			for p, want := range checks {
				if got := get(t, p); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatalf("Run after cancel: %v", err)
			}
			if e := get(t, filepath.Join(ctl, "enable")); e != "0" {
				t.Fatalf("buffer left enabled after Run: %q", e)
			}
			jumpAt := -1
			for i, s := range got {
				if int16(i) != int16(s.Values[0]/0.5) || s.Values[1] != -s.Values[0] || s.Values[2] != 1 {
					t.Fatalf("row %d: values %v", i, s.Values)
				}
				if i == 0 {
					continue
				}
				switch d := s.Seq - got[i-1].Seq; {
				case d == 4 && jumpAt < 0:
					jumpAt = i
				case d != 1:
					t.Fatalf("row %d: seq %d after %d", i, s.Seq, got[i-1].Seq)
				}
			}
			if jumpAt < 50 || jumpAt > 50+400 {
				t.Fatalf("Seq jumped by 4 at row %d, want once, within a horizon after row 50", jumpAt)
			}
			if d := got[1].Time.Sub(got[0].Time); d != time.Duration(period) {
				t.Fatalf("timestamps %v apart, want %v", d, time.Duration(period))
			}
			if d := got[50].Time.Sub(got[49].Time); d != 4*time.Duration(period) {
				t.Fatalf("gap %v, want %v", d, 4*time.Duration(period))
			}
			if src.Lost() != 3 || src.Info().Rate != 400 {
				t.Fatalf("Lost() = %d, Rate = %g", src.Lost(), src.Info().Rate)
			}
		})
	}
}

func TestBufferedBigEndianNoTimestamp(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "lis3dh", Accel: true, Scale: "1", Buffered: true, NoTimestamp: true,
		Types: [4]string{"be:s12/16>>4", "be:s12/16>>4", "be:s12/16>>4"}})
	w := ft.writer(t, 0)
	defer w.Close()
	src, err := NewSource("accel", Config{Frequencies: []float64{200}}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
	if err != nil {
		t.Fatal(err)
	}
	// x=-100, y=2047, z=-2048, low 4 bits noise.
	one := []byte{0xf9, 0xcf, 0x7f, 0xf5, 0x80, 0x0a}
	go writeChunks(t, w, append(append([]byte{}, one...), one...))
	got, err := collect(t, src, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got {
		if s.Values[0] != -100 || s.Values[1] != 2047 || s.Values[2] != -2048 {
			t.Fatalf("values %v", s.Values)
		}
	}
}

// TestBufferedDeviceLoss: the writer closing is the device vanishing; Run
// returns an error, and once a device is back a new Run delivers data. The
// hub drives the restart, as in production.
func TestBufferedDeviceLoss(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "mpu6050", Accel: true, Scale: "1", Buffered: true})
	src, err := NewSource("accel", Config{Frequencies: []float64{400}}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
	if err != nil {
		t.Fatal(err)
	}
	// The pipe keeps what is written while the test holds the write end; the
	// write end is closed only after both rows arrived.
	w := ft.writer(t, 0)
	writeChunks(t, w, append(scan(1, 1, 1, 1000), scan(2, 2, 2, 2_501_000)...))
	out := make(chan sensors.Sample, 4)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(context.Background(), out) }()
	for range 2 {
		select {
		case <-out:
		case err := <-errc:
			t.Fatalf("Run ended before the rows arrived: %v", err)
		}
	}
	_ = w.Close()
	if err := <-errc; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Run = %v, want device gone", err)
	}

	h := hub.New(hub.Options{Restart: retry.Policy{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}})
	defer h.Close()
	if err := h.Add(src); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("accel", sensors.SubscribeOptions{Queue: 64, Policy: sensors.NoDrop})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// No writer yet: Run fails with EOF and the hub retries. Then the device
	// comes back.
	time.Sleep(30 * time.Millisecond)
	w2 := ft.writer(t, 0)
	defer w2.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := w2.Write(scan(7, 7, 7, i*2_500_000)); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	select {
	case s := <-sub.C():
		if s.Values[0] != 7 {
			t.Fatalf("after recovery got %v", s.Values)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no data after the device came back")
	}
}

func TestBufferedCancelWhileIdle(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "mpu6050", Accel: true, Scale: "1", Buffered: true})
	w := ft.writer(t, 0) // a device that never sends
	defer w.Close()
	src, _ := NewSource("accel", Config{Frequencies: []float64{400}}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, make(chan sensors.Sample)) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

// TestRateReadBack: an MPU6050-like driver that takes integers only and
// rounds; the rate read back is what Info reports. sampling_frequency is a
// FIFO served by a goroutine playing the driver.
func TestRateReadBack(t *testing.T) {
	ft := newTree(t)
	dir := ft.add(t, fakeDev{Name: "mpu6050", Accel: true, Scale: "1"})
	attr := filepath.Join(dir, "sampling_frequency")
	if err := mkfifo(attr); err != nil {
		t.Fatal("mkfifo:", err)
	}
	written := make(chan string, 1)
	go func() {
		// Discover reads the current rate, Run writes, then reads back.
		if f, err := os.OpenFile(attr, os.O_WRONLY, 0); err == nil {
			_, _ = f.WriteString("50\n")
			_ = f.Close()
		}
		f, err := os.Open(attr)
		if err != nil {
			written <- err.Error()
			return
		}
		b, _ := io.ReadAll(f)
		_ = f.Close()
		written <- string(b)
		if f, err := os.OpenFile(attr, os.O_WRONLY, 0); err == nil {
			_, _ = f.WriteString("62\n") // 1000/(1+15)=62.5, the driver says 62
			_ = f.Close()
		}
	}()
	clk := clock.NewFake(time.Unix(0, 0))
	src, _ := NewSource("accel", Config{Frequencies: []float64{62.5}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys}, WithClock(clk))
	got, err := collect(t, src, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("Run: %v (%d rows)", err, len(got))
	}
	if w := <-written; w != "62.5\n" {
		t.Fatalf("driver got %q, want 62.5", w)
	}
	if r := src.Info().Rate; r != 62 {
		t.Fatalf("Info().Rate = %g, want the read-back 62", r)
	}
	if d := got[2].Time.Sub(got[1].Time); d != time.Second/62 {
		t.Fatalf("poll period %v, want 1/62 s", d)
	}
}

// TestPollRowCountRealClock is what `edge-agent sample -seconds N` relies
// on: on the real clock, one second of 100 Hz polling yields 100 rows ± 2 %
// (pacing on start + n/rate does not lose ticks to read time or timer
// overshoot).
func TestPollRowCountRealClock(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "adxl345", Accel: true, Scale: "1", Freq: "100"})
	src, err := NewSource("accel", Config{Frequencies: []float64{100}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan sensors.Sample, 256)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	first := <-out
	n := 1
	end := first.Time.Add(time.Second)
	for s := range out {
		if !s.Time.Before(end) {
			break
		}
		n++
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n < 98 || n > 102 {
		t.Fatalf("%d rows in one second at 100 Hz", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		bad  []string
	}{
		{name: "defaults", cfg: Config{}},
		{name: "poll above 100 Hz", cfg: Config{Mode: "poll", Frequencies: []float64{62.5, 400}}, bad: []string{"frequencies[1]"}},
		{name: "negative rate", cfg: Config{Frequencies: []float64{-1}}, bad: []string{"frequencies[0]"}},
		{name: "bad mode", cfg: Config{Mode: "dma"}, bad: []string{"mode"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.SetDefaults()
			got, problems := conftest.Validate(&tc.cfg)
			if strings.Join(got, ",") != strings.Join(tc.bad, ",") {
				t.Fatalf("problems %v, want %v", problems, tc.bad)
			}
		})
	}
}

// TestBufferedBadTimestamps: timestamps that go backwards or leap by hours
// (garbage, a stepped clock) are delivered and counted as discontinuities,
// not as billions of lost rows.
func TestBufferedBadTimestamps(t *testing.T) {
	ft := newTree(t)
	ft.add(t, fakeDev{Name: "mpu6050", Accel: true, Scale: "1", Buffered: true})
	w := ft.writer(t, 0)
	defer w.Close()
	src, _ := NewSource("accel", Config{Frequencies: []float64{400}}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
	tss := []int64{1_000_000_000, 1_002_500_000, 500, 3_000_000_000_000_000, 3_000_000_002_500_000}
	var stream []byte
	for i, ts := range tss {
		stream = append(stream, scan(int16(i), 0, 0, ts)...)
	}
	writeChunks(t, w, stream)
	got, err := collect(t, src, len(tss))
	if err != nil || len(got) != len(tss) {
		t.Fatalf("Run: %v, %d rows", err, len(got))
	}
	for i, s := range got {
		if s.Seq != uint64(i) || s.Values[0] != float64(i) {
			t.Fatalf("row %d: seq %d values %v", i, s.Seq, s.Values)
		}
	}
	if src.Lost() != 0 || src.Discontinuities() != 2 {
		t.Fatalf("Lost %d, Discontinuities %d; want 0 and 2", src.Lost(), src.Discontinuities())
	}
}
