package iio

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runFor runs src for d on the real clock, discarding rows, and reports the
// process CPU time spent per second of capture and the rows per second.
func runFor(b *testing.B, src *Source, d time.Duration, feed func(ctx context.Context)) {
	var cpu time.Duration
	rows := 0
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		out := make(chan sensors.Sample, 256)
		errc := make(chan error, 1)
		done := make(chan struct{})
		c0 := cpuTime(b)
		go func() { errc <- src.Run(ctx, out) }()
		if feed != nil {
			go func() { defer close(done); feed(ctx) }()
		} else {
			close(done)
		}
	loop:
		for {
			select {
			case <-out:
				rows++
			case err := <-errc:
				if err != nil {
					b.Fatal(err)
				}
				break loop
			}
		}
		<-done
		cpu += cpuTime(b) - c0
		cancel()
	}
	secs := d.Seconds() * float64(b.N)
	b.ReportMetric(float64(cpu.Microseconds())/1000/secs, "cpu-ms/s")
	b.ReportMetric(float64(rows)/secs, "rows/s")
}

// BenchmarkPoll100Hz: CPU cost of one second of 100 Hz sysfs polling on the
// fake tree (regular files: cheaper than a real I²C read, so this is the
// driver's own overhead).
func BenchmarkPoll100Hz(b *testing.B) {
	ft := newTree(b)
	ft.add(b, fakeDev{Name: "adxl345", Accel: true, Scale: "0.0383", Freq: "100", Raw: [3]int64{1, 2, 256}})
	src, err := NewSource("accel", Config{Frequencies: []float64{100}, Mode: "poll"}, sensors.Env{SysRoot: ft.sys})
	if err != nil {
		b.Fatal(err)
	}
	runFor(b, src, time.Second, nil)
}

// BenchmarkBuffered400Hz: CPU cost of one second of 400 Hz buffered capture
// from the FIFO, fed like a FIFO chip at watermark 40 (one 640-byte batch
// per 100 ms). The writer's cost is included.
func BenchmarkBuffered400Hz(b *testing.B) {
	ft := newTree(b)
	ft.add(b, fakeDev{Name: "mpu6050", Accel: true, Scale: "0.000598", Freq: "400", Buffered: true})
	w := ft.writer(b, 0)
	defer w.Close()
	src, err := NewSource("accel", Config{Frequencies: []float64{400}}, sensors.Env{SysRoot: ft.sys, DevRoot: ft.dev})
	if err != nil {
		b.Fatal(err)
	}
	ts := int64(0)
	feed := func(ctx context.Context) {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		batch := make([]byte, 0, 40*16)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			batch = batch[:0]
			for range 40 {
				ts += 2_500_000
				batch = append(batch, scan(1, 2, 3, ts)...)
			}
			if _, err := w.Write(batch); err != nil {
				return
			}
		}
	}
	runFor(b, src, time.Second, feed)
}

// BenchmarkDecode: decoding cost per scan (x, y, z s16 + s64 timestamp).
func BenchmarkDecode(b *testing.B) {
	s16, _ := ParseScanType("le:s16/16>>0")
	s64, _ := ParseScanType("le:s64/64>>0")
	l, _ := NewLayout([]Channel{{Name: "accel_x", Index: 0, Type: s16}, {Name: "accel_y", Index: 1, Type: s16}, {Name: "accel_z", Index: 2, Type: s16}, {Name: "timestamp", Index: 3, Type: s64}})
	d := newScanDecoder(l, calibration{scale: [3]float64{1, 1, 1}, mount: identity()}, 400, "monotonic")
	var buf []byte
	for i := range 40 {
		buf = append(buf, scan(int16(i), 2, 3, int64(i)*2_500_000)...)
	}
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		d.decode(buf, time.Now())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*40), "ns/scan")
}
