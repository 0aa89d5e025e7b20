package infer

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/resample"
	"github.com/edge-agent/edge-agent/sensors"
)

// collect runs samples through an extractor and returns copies of its
// windows.
func collect(t *testing.T, ex extractor, samples []sensors.Sample) []window {
	t.Helper()
	var out []window
	for _, s := range samples {
		err := ex.add(s, func(w window) error {
			w.features = slices.Clone(w.features)
			out = append(out, w)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func model(p map[string]any) Model {
	var m Model
	// Through JSON, as a hello arrives.
	b, _ := jsonMarshal(map[string]any{"project": project(), "model_parameters": p})
	if err := jsonUnmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

func motionInfo(rate float64, axes int) sensors.Info {
	return sensors.Info{Name: "accel", Class: sensors.Motion, Rate: rate, Axes: []string{"x", "y", "z"}[:axes]}
}

func rows(n, axes int, f func(i, a int) float64) []sensors.Sample {
	out := make([]sensors.Sample, n)
	for i := range out {
		v := make([]float64, axes)
		for a := range v {
			v[a] = f(i, a)
		}
		out[i] = sensors.Sample{Class: sensors.Motion, Seq: uint64(i), Values: v, Time: time.Unix(0, int64(i)*int64(time.Millisecond))}
	}
	return out
}

func TestMotionWindows(t *testing.T) {
	ex, err := newExtractor(model(motionParams(3, 4, 100, "a")), motionInfo(100, 3), 0)
	if err != nil {
		t.Fatal(err)
	}
	val := func(i, a int) float64 { return float64(10*i + a) }
	ws := collect(t, ex, rows(10, 3, val))
	// A window of 4 rows, a stride of one row (a quarter): windows end at
	// rows 3..9.
	if len(ws) != 7 {
		t.Fatalf("%d windows, want 7", len(ws))
	}
	for k, w := range ws {
		var want []float32
		for i := k; i < k+4; i++ {
			for a := 0; a < 3; a++ {
				want = append(want, float32(val(i, a)))
			}
		}
		if !slices.Equal(w.features, want) {
			t.Fatalf("window %d = %v, want %v (rows interleaved axis by axis)", k, w.features, want)
		}
		if w.span != 40*time.Millisecond || w.input != nil {
			t.Fatalf("window %d: span %v, input %v", k, w.span, w.input)
		}
	}
}

func TestMotionStrideAndGap(t *testing.T) {
	ex, err := newExtractor(model(motionParams(1, 4, 100, "a")), motionInfo(100, 1), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	smp := rows(12, 1, func(i, a int) float64 { return float64(i) })
	// Rows 6 and 7 were lost before the hub: the window starts again.
	smp = append(smp[:6], smp[8:]...)
	ws := collect(t, ex, smp)
	var got [][]float32
	for _, w := range ws {
		got = append(got, w.features)
	}
	want := [][]float32{{0, 1, 2, 3}, {2, 3, 4, 5}, {8, 9, 10, 11}}
	if len(got) != len(want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("windows %v, want %v", got, want)
		}
	}
}

func TestMotionResampled(t *testing.T) {
	// 100 Hz rows for a 40 Hz model: output row j sits at input row 2.5j.
	ex, err := newExtractor(model(motionParams(2, 4, 40, "a")), motionInfo(100, 2), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	val := func(i, a int) float64 { return float64(i) + 100*float64(a) } // linear: interpolation is exact
	ws := collect(t, ex, rows(11, 2, val))
	if len(ws) != 1 {
		t.Fatalf("%d windows, want 1", len(ws))
	}
	want := []float32{0, 100, 2.5, 102.5, 5, 105, 7.5, 107.5}
	if !slices.Equal(ws[0].features, want) {
		t.Fatalf("features %v, want %v", ws[0].features, want)
	}
}

func TestMotionMismatch(t *testing.T) {
	if _, err := newExtractor(model(motionParams(3, 4, 100, "a")), motionInfo(100, 2), 0); err == nil {
		t.Fatal("a 3-axis model on a 2-axis sensor")
	}
	if _, err := newExtractor(model(motionParams(1, 4, 100, "a")), sensors.Info{Name: "mic", Class: sensors.Audio}, 0); err == nil {
		t.Fatal("a motion model on a microphone")
	}
}

// tone returns n samples of a sine at hz, sampled at rate, starting at
// sample off.
func tone(off, n int, hz, rate float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(12000 * math.Sin(2*math.Pi*hz*float64(off+i)/rate)))
	}
	return out
}

// pcmBlocks cuts pcm into blocks of size samples (channels interleaved).
func pcmBlocks(pcm []int16, size int) []sensors.Sample {
	var out []sensors.Sample
	for i := 0; i < len(pcm); i += size {
		end := min(i+size, len(pcm))
		b := make([]byte, 2*(end-i))
		for j, v := range pcm[i:end] {
			binary.LittleEndian.PutUint16(b[2*j:], uint16(v))
		}
		out = append(out, sensors.Sample{Class: sensors.Audio, Seq: uint64(len(out)), Data: b,
			Time: time.Unix(0, int64(i)*int64(time.Second)/16000), Duration: time.Duration(end-i) * time.Second / 16000})
	}
	return out
}

func toFloats(pcm []int16) []float32 {
	out := make([]float32, len(pcm))
	for i, v := range pcm {
		out[i] = float32(v)
	}
	return out
}

func TestAudioContinuousSlices(t *testing.T) {
	// A 1 s window of 16 kHz in four slices of 4000: the model gets each
	// slice once the first second is buffered.
	ex, err := newExtractor(model(audioParams(16000, 4000, 16000, true, "noise", "tone")),
		sensors.Info{Name: "mic", Class: sensors.Audio, Rate: 16000, Channels: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	pcm := tone(0, 24000, 440, 16000)
	ws := collect(t, ex, pcmBlocks(pcm, 320))
	if len(ws) != 3 {
		t.Fatalf("%d slices, want 3 (at 1 s, 1.25 s, 1.5 s)", len(ws))
	}
	for k, w := range ws {
		end := 16000 + 4000*k
		if !w.continuous || !slices.Equal(w.features, toFloats(pcm[end-4000:end])) {
			t.Fatalf("slice %d is not samples %d..%d", k, end-4000, end)
		}
		// What was classified: the whole window, as PCM.
		if len(w.input) != 32000 || int16(binary.LittleEndian.Uint16(w.input[len(w.input)-2:])) != pcm[end-1] {
			t.Fatalf("slice %d: input of %d bytes", k, len(w.input))
		}
	}
}

func TestAudioSlidingWindow(t *testing.T) {
	ex, err := newExtractor(model(audioParams(8000, 0, 16000, false, "a")),
		sensors.Info{Name: "mic", Class: sensors.Audio, Rate: 16000, Channels: 2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Stereo: left the tone, right its negation plus 2, so the mono mix
	// is exactly 1 everywhere.
	left := tone(0, 12000, 1000, 16000)
	st := make([]int16, 0, 2*len(left))
	for _, v := range left {
		st = append(st, v, 2-v)
	}
	ws := collect(t, ex, pcmBlocks(st, 640))
	// Stride a quarter window (2000): windows end at 8000, 10000, 12000.
	if len(ws) != 3 {
		t.Fatalf("%d windows, want 3", len(ws))
	}
	for _, w := range ws {
		if w.continuous || len(w.features) != 8000 || slices.ContainsFunc(w.features, func(f float32) bool { return f != 1 }) {
			t.Fatalf("window not the mono mix of 8000 ones")
		}
	}
}

func TestAudioResampled(t *testing.T) {
	ex, err := newExtractor(model(audioParams(4000, 1000, 16000, true, "a")),
		sensors.Info{Name: "mic", Class: sensors.Audio, Rate: 48000, Channels: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	pcm := tone(0, 48000, 440, 48000)
	rs, _ := resample.New(48000, 16000, 1)
	want := toFloats(rs.Process(nil, pcm))
	ws := collect(t, ex, pcmBlocks(pcm, 960))
	if len(ws) == 0 {
		t.Fatal("no slices")
	}
	for k, w := range ws {
		end := 4000 + 1000*k
		if !slices.Equal(w.features, want[end-1000:end]) {
			t.Fatalf("slice %d is not the resampled signal", k)
		}
	}
}

func solidJPEG(t testing.TB, w, h int, c color.RGBA) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, 255
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decodedColour is what a decoder makes of a one-colour JPEG's pixels: the
// JPEG's own rounding, which the extractor must pass on unchanged.
func decodedColour(t testing.TB, data []byte) (rgb uint32, gray uint32) {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	yc := img.(*image.YCbCr)
	r, g, b := color.YCbCrToRGB(yc.Y[0], yc.Cb[0], yc.Cr[0])
	return uint32(r)<<16 | uint32(g)<<8 | uint32(b), uint32(yc.Y[0]) * 0x010101
}

func TestImageOfOneColour(t *testing.T) {
	data := solidJPEG(t, 320, 240, color.RGBA{200, 40, 90, 255})
	rgb, gray := decodedColour(t, data)
	for _, mode := range []string{ResizeSquash, ResizeFitShortest, ResizeFitLongest, ResizeNone} {
		for _, ch := range []int{3, 1} {
			ex, err := newExtractor(model(imageParams(96, 96, ch, mode, "classification", "a")),
				sensors.Info{Name: "cam", Class: sensors.Still}, 0)
			if err != nil {
				t.Fatal(err)
			}
			ws := collect(t, ex, []sensors.Sample{{Class: sensors.Still, Data: data}})
			if len(ws) != 1 || len(ws[0].features) != 96*96 || !bytes.Equal(ws[0].input, data) {
				t.Fatalf("%s: %d windows", mode, len(ws))
			}
			want := rgb
			if ch == 1 {
				want = gray
			}
			for i, f := range ws[0].features {
				x, y := i%96, i/96
				exp := want
				if mode == ResizeFitLongest && (y < 12 || y >= 84) {
					exp = 0 // 320×240 into 96×96: 96×72, 12 rows of black above and below
				}
				if uint32(f) != exp {
					t.Fatalf("%s, %d channels: pixel (%d,%d) = %#06x, want %#06x", mode, ch, x, y, uint32(f), exp)
				}
			}
		}
	}
}

func TestFitModes(t *testing.T) {
	// A 4×2 gray frame: left half 0, right half 200 (one channel).
	src := []byte{0, 0, 200, 200, 0, 0, 200, 200}
	for _, tc := range []struct {
		mode   string
		dw, dh int
		want   []byte
	}{
		{ResizeSquash, 2, 1, []byte{0, 200}},
		{ResizeSquash, 1, 1, []byte{100}},
		{ResizeFitShortest, 1, 1, []byte{100}}, // the centre 2×2: 0,200 / 0,200
		{ResizeFitShortest, 2, 2, []byte{0, 200, 0, 200}},
		{ResizeFitLongest, 2, 2, []byte{0, 200, 0, 0}}, // 2×1 scaled, centred, black below
		{ResizeNone, 2, 2, []byte{0, 200, 0, 200}},     // the centre, unscaled
		{ResizeNone, 6, 2, []byte{0, 0, 0, 200, 200, 0, 0, 0, 0, 200, 200, 0}},
		{ResizeSquash, 8, 2, []byte{0, 0, 0, 0, 200, 200, 200, 200, 0, 0, 0, 0, 200, 200, 200, 200}},
	} {
		got := fit(nil, src, 4, 2, 1, tc.dw, tc.dh, tc.mode)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s %d×%d: %v, want %v", tc.mode, tc.dw, tc.dh, got, tc.want)
		}
	}
}

func TestImageMismatch(t *testing.T) {
	if _, err := newExtractor(model(imageParams(96, 96, 3, "squash", "classification", "a")),
		sensors.Info{Name: "mic", Class: sensors.Audio, Rate: 16000}, 0); err == nil {
		t.Fatal("an image model on a microphone")
	}
	p := imageParams(96, 96, 3, "squash", "classification", "a")
	p["image_input_frames"] = 2
	if _, err := newExtractor(model(p), sensors.Info{Name: "cam", Class: sensors.Still}, 0); err == nil {
		t.Fatal("a two-frame model")
	}
	ex, _ := newExtractor(model(imageParams(8, 8, 3, "squash", "classification", "a")), sensors.Info{Name: "cam", Class: sensors.Still}, 0)
	err := ex.add(sensors.Sample{Class: sensors.Still, Data: []byte("not a jpeg")}, func(window) error { return nil })
	if err == nil || !isInputErr(err) {
		t.Fatalf("broken JPEG: %v, want an input error", err)
	}
}
