package edgeimpulse_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

// burst is a source that delivers n readings as fast as the hub takes them,
// then idles: a 60 s window is captured in well under a second, which is
// fine for measuring what happens after the capture ends.
type burst struct {
	info sensors.Info
	n    int
}

func (b *burst) Info() sensors.Info { return b.info }

func (b *burst) Run(ctx context.Context, out chan<- sensors.Sample) error {
	t0 := time.Now()
	for i := 0; i < b.n; i++ {
		s := sensors.Sample{Class: b.info.Class, Seq: uint64(i), Time: t0}
		if b.info.Class == sensors.Motion {
			s.Values = []float64{float64(i) * 0.01, -9.81 + float64(i%7)*0.1, 0.5}
		} else {
			s.Data = make([]byte, 640) // 20 ms of 16 kHz mono
			for j := 0; j < 320; j++ {
				binary.LittleEndian.PutUint16(s.Data[2*j:], uint16(int16((i*320+j)%2000-1000)))
			}
		}
		select {
		case out <- s:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// BenchmarkSampleFinish measures, against the fake, the time from the end
// of capture (sampleProcessing, sent right after the last reading) to
// sampleFinished for 60 s windows: one sample cycle per iteration, reported
// as the median, min and max of that interval with the file's size and
// rows. docs/BENCHMARKS.md runs it with -benchtime 5x.
func BenchmarkSampleFinish(b *testing.B) {
	motion := &burst{n: 6000, info: sensors.Info{Name: "bmotion", Kind: "test", Class: sensors.Motion, Rate: 100,
		Frequencies: []float64{100}, Axes: []string{"accX", "accY", "accZ"}, Units: "m/s2", MaxSampleLength: 5 * time.Minute}}
	audio := &burst{n: 3000, info: sensors.Info{Name: "baudio", Kind: "test", Class: sensors.Audio, Rate: 16000,
		Frequencies: []float64{16000}, Axes: []string{"audio"}, Channels: 1, MaxSampleLength: time.Hour}}
	for _, enc := range encodings {
		b.Run(enc, func(b *testing.B) {
			r := newRig(b, rigOpts{enc: enc, extra: []sensors.Source{motion, audio}, names: []string{"bmotion", "baudio", "cam"}})
			r.waitUp()
			for _, c := range []struct {
				name string
				req  eitest.SampleRequest
			}{
				{"60s 3-axis 100Hz", eitest.SampleRequest{Sensor: "bmotion", Label: "m", Length: 60000, Interval: 10}},
				{"60s 16kHz audio", eitest.SampleRequest{Sensor: "baudio", Label: "a", Length: 60000, Interval: 0.0625}},
			} {
				b.Run(c.name, func(b *testing.B) {
					r := r.on(b)
					var ds []time.Duration
					for b.Loop() {
						ds = append(ds, r.finishTime(c.req))
					}
					slices.Sort(ds)
					ups := r.srv.Uploads()
					u := ups[len(ups)-1]
					ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
					b.ReportMetric(ms(ds[len(ds)/2]), "ms-median")
					b.ReportMetric(ms(ds[0]), "ms-min")
					b.ReportMetric(ms(ds[len(ds)-1]), "ms-max")
					b.ReportMetric(float64(u.Size), "file-bytes")
					b.ReportMetric(float64(u.File.Rows), "rows")
				})
			}
		})
	}
}

// finishTime runs one sample cycle and returns, as the fake saw it, the
// time from sampleProcessing to sampleFinished.
func (r *rig) finishTime(req eitest.SampleRequest) time.Duration {
	r.t.Helper()
	from := len(r.srv.Messages())
	got := r.sampleCycle(req)
	if got[len(got)-1] != "sampleFinished" {
		r.t.Fatalf("%v: %s", got, r.lastSampleError())
	}
	var proc, fin time.Time
	for _, m := range r.srv.Messages()[from:] {
		switch m.Type {
		case "sampleProcessing":
			proc = m.At
		case "sampleFinished":
			fin = m.At
		}
	}
	return fin.Sub(proc)
}

// BenchmarkSnapshotRSS streams low snapshots from a 640x480 15 fps camera
// for 60 s per iteration and reports the frames and rate received and the
// process's RSS (agent side and fake together) before and while streaming,
// read every 5 s. docs/BENCHMARKS.md runs it with -benchtime 1x.
func BenchmarkSnapshotRSS(b *testing.B) {
	if _, err := rssKB(); err != nil {
		b.Skipf("RSS is read from /proc/self/status: %v", err)
	}
	cc := synthetic.Config{Signal: "camera", FPS: 15, Width: 640, Height: 480}
	cc.SetDefaults()
	r := newRig(b, rigOpts{enc: "json", extra: []sensors.Source{synthetic.NewCamera("bigcam", cc)}, names: []string{"accel", "bigcam"}, realPing: true})
	r.waitUp()
	for b.Loop() {
		before := mustRSS(b)
		from := len(r.srv.Frames())
		if err := r.srv.StartSnapshot("low"); err != nil {
			b.Fatal(err)
		}
		peak, sum := 0, 0
		const reads = 12
		for range reads {
			time.Sleep(5 * time.Second)
			kb := mustRSS(b)
			peak, sum = max(peak, kb), sum+kb
		}
		if err := r.srv.StopSnapshot(); err != nil {
			b.Fatal(err)
		}
		fr := r.srv.Frames()[from:]
		if len(fr) < 2 {
			b.Fatalf("%d frames in 60 s", len(fr))
		}
		b.ReportMetric(float64(len(fr)), "frames")
		b.ReportMetric(float64(len(fr)-1)/fr[len(fr)-1].At.Sub(fr[0].At).Seconds(), "fps")
		b.ReportMetric(float64(len(r.srv.Hellos())), "sessions")
		b.ReportMetric(float64(before), "rss-before-KiB")
		b.ReportMetric(float64(sum/reads), "rss-mean-KiB")
		b.ReportMetric(float64(peak), "rss-max-KiB")
	}
}

// rssKB reads the process's resident set size from /proc/self/status.
func rssKB() (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, errors.New("no VmRSS line in /proc/self/status")
}

func mustRSS(b *testing.B) int {
	b.Helper()
	kb, err := rssKB()
	if err != nil {
		b.Fatal(err)
	}
	return kb
}
