package edgeimpulse_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"os"
	"sort"
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

// TestBenchSampleFinish measures, against the fake, the time from the end of
// capture (sampleProcessing, sent right after the last reading) to
// sampleFinished for 60 s windows. Run with EI_BENCH=1.
func TestBenchSampleFinish(t *testing.T) {
	if os.Getenv("EI_BENCH") == "" {
		t.Skip("set EI_BENCH=1 to measure")
	}
	motion := &burst{n: 6000, info: sensors.Info{Name: "bmotion", Kind: "test", Class: sensors.Motion, Rate: 100,
		Frequencies: []float64{100}, Axes: []string{"accX", "accY", "accZ"}, Units: "m/s2", MaxSampleLength: 5 * time.Minute}}
	audio := &burst{n: 3000, info: sensors.Info{Name: "baudio", Kind: "test", Class: sensors.Audio, Rate: 16000,
		Frequencies: []float64{16000}, Axes: []string{"audio"}, Channels: 1, MaxSampleLength: time.Hour}}
	for _, enc := range encodings {
		r := newRig(t, rigOpts{enc: enc, extra: []sensors.Source{motion, audio}, names: []string{"bmotion", "baudio", "cam"}})
		r.waitUp()
		for _, c := range []struct {
			name string
			req  eitest.SampleRequest
		}{
			{"60s 3-axis 100Hz", eitest.SampleRequest{Sensor: "bmotion", Label: "m", Length: 60000, Interval: 10}},
			{"60s 16kHz audio", eitest.SampleRequest{Sensor: "baudio", Label: "a", Length: 60000, Interval: 0.0625}},
		} {
			var ds []time.Duration
			for i := 0; i < 5; i++ {
				from := len(r.srv.Messages())
				got := r.sampleCycle(c.req)
				if got[len(got)-1] != "sampleFinished" {
					t.Fatalf("%v: %s", got, r.lastSampleError())
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
				ds = append(ds, fin.Sub(proc))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			ups := r.srv.Uploads()
			u := ups[len(ups)-1]
			t.Logf("BENCH %s %s: end of capture → sampleFinished median %v (min %v, max %v), file %d bytes, %d rows",
				enc, c.name, ds[2].Round(time.Millisecond), ds[0].Round(time.Millisecond), ds[4].Round(time.Millisecond), u.Size, u.File.Rows)
		}
	}
}

// TestBenchSnapshotRSS streams low snapshots from a 640x480 15 fps camera
// for 60 s and reports the process RSS (agent side and fake together).
// Run with EI_BENCH=1.
func TestBenchSnapshotRSS(t *testing.T) {
	if os.Getenv("EI_BENCH") == "" {
		t.Skip("set EI_BENCH=1 to measure")
	}
	cc := synthetic.Config{Signal: "camera", FPS: 15, Width: 640, Height: 480}
	cc.SetDefaults()
	r := newRig(t, rigOpts{enc: "json", extra: []sensors.Source{synthetic.NewCamera("bigcam", cc)}, names: []string{"accel", "bigcam"}, realPing: true})
	r.waitUp()
	rssBefore := rssKB(t)
	if err := r.srv.StartSnapshot("low"); err != nil {
		t.Fatal(err)
	}
	var samples []int
	for i := 0; i < 12; i++ {
		time.Sleep(5 * time.Second)
		samples = append(samples, rssKB(t))
	}
	if err := r.srv.StopSnapshot(); err != nil {
		t.Fatal(err)
	}
	fr := r.srv.Frames()
	fps := float64(len(fr)-1) / fr[len(fr)-1].At.Sub(fr[0].At).Seconds()
	t.Logf("BENCH low snapshots 60 s from 640x480@15: %d frames (%.2f fps), %d sessions; RSS before %d KiB, every 5 s: %v KiB",
		len(fr), fps, len(r.srv.Hellos()), rssBefore, samples)
}

func rssKB(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}
