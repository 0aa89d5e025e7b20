package camjpeg

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"testing"
)

// TestDecodeReduced: with libjpeg-turbo every kind of source decodes at
// the smallest scale fits accepts, to the size each side rounded up, close
// (PSNR) to an area average of the whole decode; grey output is the luma.
// Without it nothing is decoded and dst is left alone.
func TestDecodeReduced(t *testing.T) {
	yuyv422, err := Turbo0().EncodeYUYV(nil, yuyvOf(picture(640, 480)), 640, 480, 90)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name         string
		src          []byte
		minW, minH   int
		wantW, wantH int // 0: not reduced
	}{
		{"640x480 4:2:0 to 1/4", testJPEG(t, 640, 480, image.YCbCrSubsampleRatio420), 150, 100, 160, 120},
		{"640x480 4:2:0 to 1/8", testJPEG(t, 640, 480, image.YCbCrSubsampleRatio420), 80, 60, 80, 60},
		{"640x480 4:2:0 to 1/2", testJPEG(t, 640, 480, image.YCbCrSubsampleRatio420), 161, 60, 320, 240},
		{"640x480 4:2:0 not reduced", testJPEG(t, 640, 480, image.YCbCrSubsampleRatio420), 321, 60, 0, 0},
		{"640x480 4:2:2", yuyv422, 150, 100, 160, 120},
		{"641x479 odd size", testJPEG(t, 641, 479, image.YCbCrSubsampleRatio420), 150, 100, 161, 120},
		{"camera mjpeg frame", mediaFrame(t), 150, 100, 160, 120},
		{"grey", grey(t), 40, 30, 40, 30},
		{"progressive", testdata(t, "progressive-320x240.jpg"), 80, 60, 80, 60},
	}
	for _, tc := range cases {
		for _, gray := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gray=%v", tc.name, gray), func(t *testing.T) {
				fits := func(w, h int) bool { return w >= tc.minW && h >= tc.minH }
				out, w, h, ok, err := DecodeReduced([]byte("x"), tc.src, fits, gray)
				if err != nil {
					t.Fatal(err)
				}
				if Turbo == nil || tc.wantW == 0 {
					if ok || string(out) != "x" {
						t.Fatalf("decoded (%v) %d bytes without a reduction", ok, len(out))
					}
					return
				}
				if !ok || w != tc.wantW || h != tc.wantH {
					t.Fatalf("ok %v, %dx%d; want %dx%d", ok, w, h, tc.wantW, tc.wantH)
				}
				ch := 3
				if gray {
					ch = 1
				}
				if out[0] != 'x' || len(out) != 1+w*h*ch {
					t.Fatalf("%d bytes for %dx%dx%d after dst's one", len(out), w, h, ch)
				}
				got := image.NewRGBA(image.Rect(0, 0, w, h))
				for i := range w * h {
					p := out[1+i*ch : 1+(i+1)*ch]
					if gray {
						got.Pix[4*i], got.Pix[4*i+1], got.Pix[4*i+2] = p[0], p[0], p[0]
					} else {
						copy(got.Pix[4*i:], p)
					}
					got.Pix[4*i+3] = 255
				}
				full := decode(t, tc.src)
				d := (full.Bounds().Dx() + w - 1) / w // the scale's denominator
				ref := blockRef(full, d, w, h, gray)
				if p := psnr(t, got, ref); p < 30 {
					t.Errorf("PSNR %.1f dB against the whole decode shrunk, want ≥ 30", p)
				}
			})
		}
	}
}

// blockRef averages m over d×d blocks (clipped at its edges), as the
// reduced IDCT does: output pixel (x, y) covers [d·x, d·x+d) × [d·y, d·y+d),
// in RGB or its luma as grey.
func blockRef(m image.Image, d, w, h int, gray bool) *image.RGBA {
	b := m.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for oy := range h {
		for ox := range w {
			var r, g, bl, n float64
			for y := oy * d; y < min(oy*d+d, b.Dy()); y++ {
				for x := ox * d; x < min(ox*d+d, b.Dx()); x++ {
					c := m.At(b.Min.X+x, b.Min.Y+y)
					if yc, ok := c.(color.YCbCr); ok && gray {
						c = color.Gray{Y: yc.Y}
					}
					cr, cg, cb, _ := c.RGBA()
					r, g, bl, n = r+float64(cr>>8), g+float64(cg>>8), bl+float64(cb>>8), n+1
				}
			}
			out.SetRGBA(ox, oy, color.RGBA{uint8(r/n + .5), uint8(g/n + .5), uint8(bl/n + .5), 255})
		}
	}
	return out
}

func TestDecodeReducedRefuses(t *testing.T) {
	src := testJPEG(t, 640, 480, image.YCbCrSubsampleRatio420)
	any := func(w, h int) bool { return true }
	for name, in := range map[string][]byte{
		"empty": nil, "not a jpeg": []byte("not a jpeg at all"), "SOI only": {0xff, 0xd8, 0xff},
		"cut short": src[:len(src)/2], "header only": src[:300],
	} {
		out, _, _, ok, err := DecodeReduced(nil, in, any, false)
		if ok || len(out) != 0 || err != nil {
			t.Errorf("%s: ok %v, %d bytes, %v; want nothing decoded (the caller's decoder judges it)", name, ok, len(out), err)
		}
	}
	// Zero padding after EOI is a whole frame.
	padded := append(append([]byte(nil), src...), 0, 0, 0, 0)
	if _, w, _, ok, err := DecodeReduced(nil, padded, any, false); Turbo != nil && (!ok || err != nil || w != 80) {
		t.Errorf("padded: ok %v, %d wide, %v", ok, w, err)
	}
	// A frame header libjpeg cannot take is an error.
	bad := append([]byte(nil), src...)
	sof := bytes.Index(bad, []byte{0xff, 0xc0})
	bad[sof+4] = 12 // 12-bit samples: not in a baseline 8-bit build
	if _, _, _, ok, err := DecodeReduced(nil, bad, any, false); Turbo != nil && (ok || err == nil) {
		t.Errorf("12-bit header: ok %v, %v; want an error", ok, err)
	}
}

func TestJPEGSize(t *testing.T) {
	for _, tc := range []struct {
		src  []byte
		w, h int
	}{
		{testJPEG(t, 641, 479, image.YCbCrSubsampleRatio420), 641, 479},
		{grey(t), 160, 120},
		{testdata(t, "progressive-320x240.jpg"), 320, 240},
		{mediaFrame(t), 640, 480},
	} {
		if w, h, ok := jpegSize(tc.src); !ok || w != tc.w || h != tc.h {
			t.Errorf("jpegSize = %d, %d, %v; want %d×%d", w, h, ok, tc.w, tc.h)
		}
	}
}
