package edgeimpulse

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"testing"
)

func TestPicker(t *testing.T) {
	cases := []struct {
		name    string
		in, out float64
		rows    int
		want    []int // input indexes picked
	}{
		{"same rate", 100, 100, 4, []int{0, 1, 2, 3}},
		{"half", 100, 50, 3, []int{0, 2, 4}},
		{"two thirds", 75, 50, 4, []int{0, 1, 3, 4}},
		{"double (hold)", 50, 100, 5, []int{0, 0, 1, 1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPicker(c.in, c.out, c.rows)
			var got []int
			for n := 0; !p.done(); n++ {
				if err := p.feed([]float64{float64(n)}, func(r []float64) error {
					got = append(got, int(r[0]))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestScaleJPEG(t *testing.T) {
	cases := []struct{ w, h, wantW, wantH int }{
		{320, 240, 128, 96},
		{640, 480, 128, 96},
		{1920, 1080, 171, 96},
		{96, 64, 96, 64}, // already small: unchanged
	}
	for _, c := range cases {
		img := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
		for y := 0; y < c.h; y++ {
			for x := 0; x < c.w; x++ {
				img.Set(x, y, color.RGBA{200, 30, 30, 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, nil); err != nil {
			t.Fatal(err)
		}
		out, err := scaleJPEG(buf.Bytes(), 96)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if b := dec.Bounds(); b.Dx() != c.wantW || b.Dy() != c.wantH {
			t.Errorf("%dx%d → %dx%d, want %dx%d", c.w, c.h, b.Dx(), b.Dy(), c.wantW, c.wantH)
		}
		r, g, _, _ := dec.At(c.wantW/2, c.wantH/2).RGBA()
		if r>>8 < 170 || g>>8 > 70 {
			t.Errorf("%dx%d: colour not kept: r=%d g=%d", c.w, c.h, r>>8, g>>8)
		}
	}
	if _, err := scaleJPEG([]byte("not a jpeg"), 96); err == nil {
		t.Error("garbage accepted")
	}
}

func BenchmarkAcqWriter(b *testing.B) {
	for _, enc := range []Encoding{JSON, CBOR} {
		b.Run(string(enc)+"/6000x3", func(b *testing.B) {
			a := Acquisition{DeviceType: "T", IntervalMs: 10, Sensors: []AcqSensor{{"x", "m/s2"}, {"y", "m/s2"}, {"z", "m/s2"}}}
			row := []float64{0.123456, -9.81, 1.5}
			for b.Loop() {
				aw, _ := NewAcqWriter(io.Discard, enc, a, []byte("k"))
				for i := 0; i < 6000; i++ {
					_ = aw.WriteRow(row)
				}
				_, _ = aw.Close()
			}
		})
	}
}

func BenchmarkScaleJPEG(b *testing.B) {
	for _, size := range []image.Point{{320, 240}, {640, 480}} {
		img := image.NewRGBA(image.Rect(0, 0, size.X, size.Y))
		var buf bytes.Buffer
		_ = jpeg.Encode(&buf, img, nil)
		b.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(b *testing.B) {
			for b.Loop() {
				if _, err := scaleJPEG(buf.Bytes(), 96); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
