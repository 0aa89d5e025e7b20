package synthetic_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"image/jpeg"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/h264"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func cfg(signal string, tweak func(*synthetic.Config)) synthetic.Config {
	c := synthetic.Config{Signal: signal}
	if tweak != nil {
		tweak(&c)
	}
	c.SetDefaults()
	return c
}

// capture runs src until n samples arrived and returns them.
func capture(t *testing.T, src sensors.Source, n int) []sensors.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan sensors.Sample, n)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	var got []sensors.Sample
	for len(got) < n {
		select {
		case s := <-out:
			got = append(got, s)
		case <-ctx.Done():
			t.Fatalf("only %d of %d samples", len(got), n)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return got
}

func TestMotionIsPredictable(t *testing.T) {
	src := synthetic.NewMotion("accel", cfg("motion", func(c *synthetic.Config) {
		c.Frequencies = []float64{200}
		c.Noise = 0.1
		c.Seed = 7
	}))
	if info := src.Info(); info.Class != sensors.Motion || info.Rate != 200 || len(info.Axes) != 3 || info.Axes[2] != "accZ" {
		t.Fatalf("info = %+v", info)
	}
	got := capture(t, src, 100)
	for i, s := range got {
		if s.Seq != uint64(i) || len(s.Values) != 3 {
			t.Fatalf("sample %d: seq %d, %d values", i, s.Seq, len(s.Values))
		}
		for a := range 3 {
			if s.Values[a] != src.Value(s.Seq, a) {
				t.Fatalf("sample %d axis %d = %v, want %v", i, a, s.Values[a], src.Value(s.Seq, a))
			}
		}
		if i > 0 {
			if dt := s.Time.Sub(got[i-1].Time); dt != 5*time.Millisecond {
				t.Fatalf("timestamp step %v, want 5ms", dt)
			}
		}
	}
	// Gravity on Z, noise bounded, and the same seed gives the same values.
	z := src.Value(0, 2)
	if math.Abs(z-9.81) > 0.1+1e-9 {
		t.Errorf("z at t=0 = %v", z)
	}
	other := synthetic.NewMotion("b", cfg("motion", func(c *synthetic.Config) { c.Frequencies = []float64{200}; c.Noise = 0.1; c.Seed = 7 }))
	if other.Value(42, 1) != src.Value(42, 1) {
		t.Error("same seed, different value")
	}
}

func TestAudioTone(t *testing.T) {
	src := synthetic.NewAudio("mic", cfg("audio", nil))
	info := src.Info()
	if info.Class != sensors.Audio || info.Rate != 16000 || info.Channels != 1 {
		t.Fatalf("info = %+v", info)
	}
	got := capture(t, src, 5)
	var pcm []int16
	for _, s := range got {
		if len(s.Data) != 640 || s.Duration != 20*time.Millisecond {
			t.Fatalf("block of %d bytes, %v", len(s.Data), s.Duration)
		}
		for i := 0; i < len(s.Data); i += 2 {
			pcm = append(pcm, int16(binary.LittleEndian.Uint16(s.Data[i:])))
		}
	}
	// 440 Hz at 16 kHz: zero crossings every 16000/880 ≈ 18.2 samples.
	crossings := 0
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			crossings++
		}
	}
	if want := 2 * 440 * len(pcm) / 16000; crossings < want-2 || crossings > want+2 {
		t.Errorf("%d zero crossings in %d samples, want ≈%d", crossings, len(pcm), want)
	}
	for i, v := range pcm {
		if v != src.PCM(uint64(i)) {
			t.Fatalf("pcm[%d] = %d, want %d", i, v, src.PCM(uint64(i)))
		}
	}
}

func TestCameraFramesDecode(t *testing.T) {
	src := synthetic.NewCamera("cam", cfg("camera", func(c *synthetic.Config) { c.FPS = 50; c.Width = 160; c.Height = 120 }))
	got := capture(t, src, 3)
	for i, s := range got {
		img, err := jpeg.Decode(bytes.NewReader(s.Data))
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if b := img.Bounds(); b.Dx() != 160 || b.Dy() != 120 {
			t.Errorf("frame %d is %v", i, b)
		}
	}
	if bytes.Equal(got[0].Data, got[1].Data) {
		t.Error("consecutive frames identical; the moving bar should differ")
	}
}

func TestH264LoopsWithParameterSetsBeforeKeyframes(t *testing.T) {
	src, err := synthetic.NewH264("video", cfg("h264", func(c *synthetic.Config) { c.FPS = 120 }))
	if err != nil {
		t.Fatal(err)
	}
	info := src.Info()
	if info.Class != sensors.Video || info.Width != 320 || info.Height != 240 {
		t.Fatalf("info = %+v", info)
	}
	n := len(src.Units())
	got := capture(t, src, n+16) // more than one pass of the loop
	if !got[0].Keyframe {
		t.Fatal("stream does not start at a keyframe")
	}
	keyframes := 0
	for i, s := range got {
		nals := h264.SplitNALs(s.Data)
		if s.Keyframe {
			keyframes++
			if h264.NALType(nals[0]) != h264.NALSPS || h264.NALType(nals[1]) != h264.NALPPS {
				t.Errorf("keyframe %d starts with NAL types %d,%d, want SPS,PPS", i, h264.NALType(nals[0]), h264.NALType(nals[1]))
			}
		}
	}
	if keyframes < 5 { // 4 per 60-frame pass, plus the loop's restart
		t.Errorf("%d keyframes in %d units", keyframes, len(got))
	}
	// RequestKeyframe jumps to the next IDR.
	if err := src.RequestKeyframe(); err != nil {
		t.Fatal(err)
	}
	if next := capture(t, src, 1); !next[0].Keyframe {
		t.Error("unit after RequestKeyframe is not a keyframe")
	}
}

// TestCameraFrameContent: the picture is what Camera's doc says (colour
// bars above a dark strip whose white bar moves one pixel a frame), within
// JPEG's loss.
func TestCameraFrameContent(t *testing.T) {
	src := synthetic.NewCamera("cam", cfg("camera", func(c *synthetic.Config) { c.Width = 320; c.Height = 240 }))
	for _, n := range []uint64{0, 37, 290, 320} { // 320 wraps to 0
		data, err := src.Frame(n)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		pos := int(n % 320)
		for _, p := range []struct {
			x, y    int
			r, g, b int
		}{
			{22, 60, 192, 192, 192}, // first bar
			{68, 100, 192, 192, 0},  // second bar
			{300, 170, 0, 0, 192},   // last bar
			{pos + 10, 230, 255, 255, 255},
			{(pos + 160) % 320, 230, 16, 16, 16},
		} {
			r, g, b, _ := img.At(p.x, p.y).RGBA()
			if d := max(abs(int(r>>8)-p.r), abs(int(g>>8)-p.g), abs(int(b>>8)-p.b)); d > 12 {
				t.Errorf("frame %d at (%d,%d): %d,%d,%d, want about %d,%d,%d", n, p.x, p.y, r>>8, g>>8, b>>8, p.r, p.g, p.b)
			}
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestCameraVisitor: with visitor_every the middle of the picture turns
// white for visitor_for at the start of each period, and only then.
func TestCameraVisitor(t *testing.T) {
	src := synthetic.NewCamera("cam", cfg("camera", func(c *synthetic.Config) {
		c.Width, c.Height, c.FPS = 320, 240, 5
		c.VisitorEvery, c.VisitorFor = conf.Duration(10*time.Second), conf.Duration(2*time.Second)
	}))
	for _, tc := range []struct {
		n       uint64 // at 5 fps: frame 5 is 1 s
		visitor bool
	}{{0, true}, {9, true}, {10, false}, {49, false}, {50, true}, {61, false}} {
		if got := src.Visiting(tc.n); got != tc.visitor {
			t.Errorf("frame %d: Visiting = %v, want %v", tc.n, got, tc.visitor)
		}
		data, err := src.Frame(tc.n)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		want := [3]int{0, 192, 0} // the fourth bar, green, under the block
		if tc.visitor {
			want = [3]int{235, 235, 235}
		}
		r, g, b, _ := img.At(160, 100).RGBA()
		if d := max(abs(int(r>>8)-want[0]), abs(int(g>>8)-want[1]), abs(int(b>>8)-want[2])); d > 16 {
			t.Errorf("frame %d at the middle: %d,%d,%d, want about %v", tc.n, r>>8, g>>8, b>>8, want)
		}
	}
}
