package infer

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
	"github.com/edge-agent/edge-agent/sensors"
)

// sceneJPEG is a w×h frame more like a camera's than patternJPEG: smooth
// shading, a bright disc with a hard edge, thin dark lines and sensor
// noise, at the quality cameras send.
func sceneJPEG(t testing.TB, w, h int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			r := 60 + 120*float64(x)/float64(w)
			g := 90 + 100*float64(y)/float64(h)
			b := 140 - 60*float64(x+y)/float64(w+h)
			if dx, dy := float64(x-w*2/3), float64(y-h/3); dx*dx+dy*dy < float64(h*h)/25 {
				r, g, b = 240, 220, 90
			}
			if x%53 < 2 || y%41 == 0 {
				r, g, b = r/4, g/4, b/4
			}
			n := rng.NormFloat64() * 4
			img.Set(x, y, color.RGBA{clamp8(r + n), clamp8(g + n), clamp8(b + n), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func clamp8(v float64) uint8 { return uint8(min(255, max(0, math.Round(v)))) }

// TestImageFeaturesReducedDecode: a 640×480 frame decoded at a reduced DCT
// scale gives the features of the whole decode within 3 levels of 255 per
// channel on average, for every resize mode that shrinks, in colour and in
// grey; and the reduced decode is what ran (with libjpeg-turbo), at the
// scale expected. Without libjpeg-turbo both paths are the whole decode.
func TestImageFeaturesReducedDecode(t *testing.T) {
	frames := map[string][]byte{"pattern": patternJPEG(t, 640, 480), "scene": sceneJPEG(t, 640, 480)}
	for _, tc := range []struct {
		w, h         int
		mode         string
		reducedW     int // the reduced frame's size with libjpeg-turbo; 0: whole
		reducedH     int
		channelCount int
	}{
		{96, 96, ResizeSquash, 320, 240, 3},
		{96, 96, ResizeFitShortest, 320, 240, 3},
		{96, 96, ResizeFitLongest, 320, 240, 3},
		{96, 96, ResizeSquash, 320, 240, 1},
		{96, 96, ResizeFitShortest, 320, 240, 1},
		{96, 96, ResizeFitLongest, 320, 240, 1},
		{160, 120, ResizeSquash, 320, 240, 3},
		{160, 160, ResizeFitLongest, 320, 240, 3},
		{48, 48, ResizeSquash, 160, 120, 3},
		{48, 48, ResizeFitShortest, 160, 120, 3},
		{60, 60, ResizeFitLongest, 160, 120, 3},
		{20, 20, ResizeSquash, 80, 60, 3},
		{200, 100, ResizeFitShortest, 0, 0, 3}, // its 640×320 cut is not twice 200 wide at 1/2
		{320, 320, ResizeSquash, 0, 0, 3},
		{96, 96, ResizeNone, 0, 0, 3},
	} {
		for name, data := range frames {
			t.Run(fmt.Sprintf("%s/%dx%dx%d/%s", tc.mode, tc.w, tc.h, tc.channelCount, name), func(t *testing.T) {
				ex, err := newImageExtractor(model(imageParams(tc.w, tc.h, tc.channelCount, tc.mode, "classification", "a")).Params)
				if err != nil {
					t.Fatal(err)
				}
				src, sw, sh, err := ex.decodeFull(data)
				if err != nil {
					t.Fatal(err)
				}
				whole := ex.pack(src, sw, sh, nil)
				src, sw, sh, err = ex.decode(data)
				if err != nil {
					t.Fatal(err)
				}
				wantW, wantH := 640, 480
				if tc.reducedW > 0 && camjpeg.Turbo != nil {
					wantW, wantH = tc.reducedW, tc.reducedH
				}
				if sw != wantW || sh != wantH {
					t.Fatalf("decoded at %dx%d, want %dx%d", sw, sh, wantW, wantH)
				}
				reduced := ex.pack(src, sw, sh, nil)
				// And through add, as the stream runs it.
				var added []float32
				if err := ex.add(sensors.Sample{Class: sensors.Still, Data: data}, func(w window) error {
					added = append(added, w.features...)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(added) != fmt.Sprint(reduced) {
					t.Fatal("add's features are not decode's")
				}
				mean, worst := featureDiff(whole, reduced)
				t.Logf("mean |Δ| per channel %.2f %.2f %.2f, worst pixel %d", mean[0], mean[1], mean[2], worst)
				for c, m := range mean {
					if m > 3 {
						t.Errorf("channel %d: mean |Δ| %.2f levels, want ≤ 3", c, m)
					}
				}
			})
		}
	}
}

// featureDiff compares two feature vectors (0xRRGGBB per pixel): the mean
// absolute difference per channel and the largest of one channel anywhere.
func featureDiff(a, b []float32) ([3]float64, int) {
	var sum [3]float64
	worst := 0
	if len(a) != len(b) {
		return [3]float64{math.Inf(1), math.Inf(1), math.Inf(1)}, 255
	}
	for i := range a {
		pa, pb := uint32(a[i]), uint32(b[i])
		for c := range 3 {
			sh := 16 - 8*c
			d := int(pa>>sh&0xff) - int(pb>>sh&0xff)
			if d < 0 {
				d = -d
			}
			sum[c] += float64(d)
			worst = max(worst, d)
		}
	}
	for c := range sum {
		sum[c] /= float64(len(a))
	}
	return sum, worst
}

// TestImageFeaturesReducedFallback: a frame the reduced decode does not
// take is decoded whole, with the whole decode's verdict: a frame cut
// short is refused as before (libjpeg would fill it with grey), and not a
// JPEG at all is an input error.
func TestImageFeaturesReducedFallback(t *testing.T) {
	ex, err := newImageExtractor(model(imageParams(96, 96, 3, ResizeSquash, "classification", "a")).Params)
	if err != nil {
		t.Fatal(err)
	}
	data := sceneJPEG(t, 640, 480)
	for name, in := range map[string][]byte{"cut short": data[:len(data)*2/3], "not a jpeg": []byte("not a jpeg"),
		"no image after the header": data[:600]} {
		err := ex.add(sensors.Sample{Class: sensors.Still, Data: in}, func(window) error { return nil })
		if !isInputErr(err) {
			t.Errorf("%s: err = %v, want an input error", name, err)
		}
	}
	// Zero padding after EOI (some UVC cameras) still decodes reduced.
	padded := append(append([]byte(nil), data...), make([]byte, 64)...)
	if _, w, _, err := ex.decode(padded); err != nil || (camjpeg.Turbo != nil && w != 320) {
		t.Errorf("padded frame: %d wide, %v", w, err)
	}
}

// BenchmarkImageFeatures compares, in one run, the features of a 640×480
// frame for a 96×96 model through the whole decode (the anchor) and
// through the reduced one (what add does), per resize mode.
//
//	GOMAXPROCS=1 go test -run '^$' -bench ImageFeatures -benchmem -count 3 ./agent/infer
func BenchmarkImageFeatures(b *testing.B) {
	data := sceneJPEG(b, 640, 480)
	for _, mode := range []string{ResizeSquash, ResizeFitShortest, ResizeFitLongest} {
		ex, err := newImageExtractor(model(imageParams(96, 96, 3, mode, "classification", "a")).Params)
		if err != nil {
			b.Fatal(err)
		}
		var dst []float32
		b.Run(mode+"/whole", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				src, sw, sh, err := ex.decodeFull(data)
				if err != nil {
					b.Fatal(err)
				}
				dst = ex.pack(src, sw, sh, dst[:0])
			}
		})
		b.Run(mode+"/reduced", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				src, sw, sh, err := ex.decode(data)
				if err != nil {
					b.Fatal(err)
				}
				dst = ex.pack(src, sw, sh, dst[:0])
			}
		})
	}
}
