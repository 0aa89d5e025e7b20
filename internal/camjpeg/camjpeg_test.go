package camjpeg

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// picture is a test scene with flat areas, smooth gradients and hard
// edges (what a JPEG encoder finds easy and hard), in full-resolution
// YCbCr so every subsampled form can be made from it. Its colour edges lie
// on a 16-pixel grid, so 4:2:0 (all image/jpeg writes) keeps them exactly.
func picture(w, h int) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio444)
	for y := range h {
		for x := range w {
			var r, g, b uint8
			switch y / 32 % 3 {
			case 0: // colour bars
				bar := x / 32 % 8
				r, g, b = uint8(192*(bar&1)), uint8(192*(bar>>1&1)), uint8(192*(bar>>2&1))
			case 1: // gradients
				r, g, b = uint8(x*255/w), uint8(y*255/h), uint8(255-x*255/w)
			default: // a grey checker with a yellow block
				v := uint8(40)
				if (x/16+y/16)%2 == 0 {
					v = 200
				}
				r, g, b = v, v, v
				if x/64%4 == 1 {
					r, g, b = 250, 250, 30
				}
			}
			yy, cb, cr := color.RGBToYCbCr(r, g, b)
			m.Y[y*m.YStride+x], m.Cb[y*m.CStride+x], m.Cr[y*m.CStride+x] = yy, cb, cr
		}
	}
	return m
}

// subsample averages p's chroma into a new image of ratio r.
func subsample(p *image.YCbCr, r image.YCbCrSubsampleRatio) *image.YCbCr {
	b := p.Rect
	m := image.NewYCbCr(b, r)
	copy(m.Y, p.Y)
	sx, sy := 1, 1
	switch r {
	case image.YCbCrSubsampleRatio420:
		sx, sy = 2, 2
	case image.YCbCrSubsampleRatio422:
		sx = 2
	case image.YCbCrSubsampleRatio440:
		sy = 2
	}
	for cy := 0; cy*sy < b.Dy(); cy++ {
		for cx := 0; cx*sx < b.Dx(); cx++ {
			var cb, cr, n int
			for y := cy * sy; y < min((cy+1)*sy, b.Dy()); y++ {
				for x := cx * sx; x < min((cx+1)*sx, b.Dx()); x++ {
					cb += int(p.Cb[y*p.CStride+x])
					cr += int(p.Cr[y*p.CStride+x])
					n++
				}
			}
			m.Cb[cy*m.CStride+cx], m.Cr[cy*m.CStride+cx] = uint8(cb/n), uint8(cr/n)
		}
	}
	return m
}

func yuyvOf(p *image.YCbCr) []byte {
	m := subsample(p, image.YCbCrSubsampleRatio422)
	w, h := p.Rect.Dx(), p.Rect.Dy()
	out := make([]byte, 0, w*h*2)
	for y := range h {
		for x := 0; x < w; x += 2 {
			c := y*m.CStride + x/2
			out = append(out, m.Y[y*m.YStride+x], m.Cb[c], m.Y[y*m.YStride+x+1], m.Cr[c])
		}
	}
	return out
}

func nv12Of(p *image.YCbCr) []byte {
	m := subsample(p, image.YCbCrSubsampleRatio420)
	w, h := p.Rect.Dx(), p.Rect.Dy()
	out := append([]byte(nil), m.Y[:w*h]...)
	for i := range w / 2 * h / 2 {
		out = append(out, m.Cb[i], m.Cr[i])
	}
	return out
}

// psnr compares two images of the same size over R, G and B.
func psnr(t testing.TB, a, b image.Image) float64 {
	return psnrOver(t, a, b, false)
}

// psnrLuma compares two images' luma only: what a resize filter changes,
// apart from where the output's 4:2:0 chroma smears a colour edge that does
// not fall on an even pixel.
func psnrLuma(t testing.TB, a, b image.Image) float64 {
	return psnrOver(t, a, b, true)
}

func rgba(m image.Image) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, m.Bounds().Dx(), m.Bounds().Dy()))
	draw.Draw(out, out.Rect, m, m.Bounds().Min, draw.Src)
	return out
}

func psnrOver(t testing.TB, a, b image.Image, luma bool) float64 {
	t.Helper()
	if a.Bounds().Size() != b.Bounds().Size() {
		t.Fatalf("sizes differ: %v and %v", a.Bounds(), b.Bounds())
	}
	pa, pb := rgba(a).Pix, rgba(b).Pix
	var se float64
	n := 0
	for i := 0; i < len(pa); i += 4 {
		if luma {
			ya := (19595*int(pa[i]) + 38470*int(pa[i+1]) + 7471*int(pa[i+2]) + 1<<15) >> 16
			yb := (19595*int(pb[i]) + 38470*int(pb[i+1]) + 7471*int(pb[i+2]) + 1<<15) >> 16
			se += float64((ya - yb) * (ya - yb))
			n++
			continue
		}
		for c := range 3 {
			d := float64(int(pa[i+c]) - int(pb[i+c]))
			se += d * d
		}
		n += 3
	}
	if se == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(se/float64(n)))
}

func decode(t testing.TB, data []byte) image.Image {
	t.Helper()
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("image/jpeg cannot decode the output (%d bytes): %v", len(data), err)
	}
	return m
}

// encoded runs one encode on every codec and checks what each produced:
// image/jpeg decodes it to w×h, its PSNR against ref is at least minRef,
// and the codecs' pictures have a PSNR of at least minPair to each other.
func encoded(t *testing.T, w, h int, ref image.Image, minRef, minPair float64, enc func(c Codec) ([]byte, error)) {
	t.Helper()
	encodedBy(t, psnr, w, h, ref, minRef, minPair, enc)
}

// encodedBy is encoded with the PSNR measure given.
func encodedBy(t *testing.T, measure func(testing.TB, image.Image, image.Image) float64, w, h int, ref image.Image,
	minRef, minPair float64, enc func(c Codec) ([]byte, error)) {
	t.Helper()
	var pics []image.Image
	for _, c := range Codecs() {
		out, err := enc(c)
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		m := decode(t, out)
		if got := m.Bounds().Size(); got != image.Pt(w, h) {
			t.Fatalf("%s: decoded %v, want %dx%d", c.Name(), got, w, h)
		}
		if p := measure(t, m, ref); p < minRef {
			t.Errorf("%s: PSNR %.1f dB against the source, want >= %.0f", c.Name(), p, minRef)
		}
		pics = append(pics, m)
	}
	for i := 1; i < len(pics); i++ {
		if p := measure(t, pics[0], pics[i]); p < minPair {
			t.Errorf("%s and %s differ: PSNR %.1f dB, want >= %.0f", Codecs()[0].Name(), Codecs()[i].Name(), p, minPair)
		}
	}
}

var sizes = []image.Point{{320, 240}, {640, 480}, {1280, 720}, {98, 34}, {18, 16}}

func TestEncodeYUYV(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprint(sz), func(t *testing.T) {
			src := picture(sz.X, sz.Y)
			frame := yuyvOf(src)
			encoded(t, sz.X, sz.Y, subsample(src, image.YCbCrSubsampleRatio422), 32, 32, func(c Codec) ([]byte, error) {
				return c.EncodeYUYV(nil, frame, sz.X, sz.Y, 90)
			})
		})
	}
}

func TestEncodeNV12(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprint(sz), func(t *testing.T) {
			src := picture(sz.X, sz.Y)
			frame := nv12Of(src)
			encoded(t, sz.X, sz.Y, subsample(src, image.YCbCrSubsampleRatio420), 32, 32, func(c Codec) ([]byte, error) {
				return c.EncodeNV12(nil, frame, sz.X, sz.Y, 90)
			})
		})
	}
}

// TestEncodeYCbCr covers every ratio, sizes that are not whole MCUs (the
// padding turbo.c replicates) and an image that is a window of a larger one.
func TestEncodeYCbCr(t *testing.T) {
	for _, r := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio440} {
		for _, sz := range []image.Point{{640, 480}, {33, 17}, {7, 9}} {
			t.Run(fmt.Sprint(r, sz), func(t *testing.T) {
				m := subsample(picture(sz.X, sz.Y), r)
				encoded(t, sz.X, sz.Y, m, 32, 32, func(c Codec) ([]byte, error) { return c.EncodeYCbCr(nil, m, 90) })
			})
		}
	}
	t.Run("window", func(t *testing.T) {
		big := subsample(picture(96, 64), image.YCbCrSubsampleRatio420)
		win := big.SubImage(image.Rect(16, 8, 80, 56)).(*image.YCbCr)
		encoded(t, 64, 48, win, 32, 32, func(c Codec) ([]byte, error) { return c.EncodeYCbCr(nil, win, 90) })
	})
}

func TestEncodeGray(t *testing.T) {
	src := picture(100, 60)
	g := &image.Gray{Pix: src.Y, Stride: src.YStride, Rect: src.Rect}
	encoded(t, 100, 60, g, 32, 32, func(c Codec) ([]byte, error) { return c.EncodeGray(nil, g, 90) })
}

// TestEncodeAppends: output goes after what dst holds, which is kept.
func TestEncodeAppends(t *testing.T) {
	frame := yuyvOf(picture(64, 32))
	for _, c := range Codecs() {
		out, err := c.EncodeYUYV([]byte("head"), frame, 64, 32, 80)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out, []byte("head\xff\xd8")) {
			t.Errorf("%s: output starts % x", c.Name(), out[:8])
		}
	}
}

func TestBadSizes(t *testing.T) {
	frame := make([]byte, 100)
	for _, c := range Codecs() {
		for _, tc := range []struct {
			name string
			f    func() ([]byte, error)
		}{
			{"yuyv short", func() ([]byte, error) { return c.EncodeYUYV(nil, frame, 10, 10, 80) }},
			{"yuyv odd width", func() ([]byte, error) { return c.EncodeYUYV(nil, frame, 5, 2, 80) }},
			{"yuyv zero", func() ([]byte, error) { return c.EncodeYUYV(nil, frame, 0, 2, 80) }},
			{"nv12 short", func() ([]byte, error) { return c.EncodeNV12(nil, frame, 10, 10, 80) }},
			{"nv12 odd", func() ([]byte, error) { return c.EncodeNV12(nil, frame, 4, 3, 80) }},
			{"ycbcr short planes", func() ([]byte, error) {
				m := image.NewYCbCr(image.Rect(0, 0, 16, 16), image.YCbCrSubsampleRatio420)
				m.Cr = m.Cr[:10]
				return c.EncodeYCbCr(nil, m, 80)
			}},
			{"ycbcr 4:1:1", func() ([]byte, error) {
				return c.EncodeYCbCr(nil, image.NewYCbCr(image.Rect(0, 0, 16, 16), image.YCbCrSubsampleRatio411), 80)
			}},
		} {
			if _, err := tc.f(); !errors.Is(err, ErrSize) {
				t.Errorf("%s %s: err %v, want ErrSize", c.Name(), tc.name, err)
			}
		}
	}
}

// shrinkRef is the reference preview: the full image decoded by image/jpeg
// and area-averaged in RGB, computed independently of the package.
func shrinkRef(m image.Image, w, h int) *image.RGBA {
	b := m.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	sx, sy := float64(b.Dx())/float64(w), float64(b.Dy())/float64(h)
	for oy := range h {
		for ox := range w {
			var r, g, bl, n float64
			for y := int(float64(oy) * sy); y < int(float64(oy+1)*sy); y++ {
				for x := int(float64(ox) * sx); x < int(float64(ox+1)*sx); x++ {
					cr, cg, cb, _ := m.At(b.Min.X+x, b.Min.Y+y).RGBA()
					r, g, bl, n = r+float64(cr>>8), g+float64(cg>>8), bl+float64(cb>>8), n+1
				}
			}
			out.SetRGBA(ox, oy, color.RGBA{uint8(r/n + .5), uint8(g/n + .5), uint8(bl/n + .5), 255})
		}
	}
	return out
}

func testJPEG(t testing.TB, w, h int, r image.YCbCrSubsampleRatio) []byte {
	t.Helper()
	out, err := Go.EncodeYCbCr(nil, subsample(picture(w, h), r), 90)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestThumbnail: every codec's preview is the expected size, decodes, and
// is close to an independent reference and to the other codec's preview.
// The sources cover 4:2:0 (image/jpeg, most webcams' MJPEG), 4:2:2 (UVC
// MJPEG, what turbo.c writes for YUYV), grey and progressive, at the sizes
// the camera paths use.
func TestThumbnail(t *testing.T) {
	yuyv422, err := Turbo0().EncodeYUYV(nil, yuyvOf(picture(640, 480)), 640, 480, 90)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		src    []byte
		height int
	}{
		{"640x480 4:2:0", testJPEG(t, 640, 480, image.YCbCrSubsampleRatio420), 96},
		{"320x240 4:2:0", testJPEG(t, 320, 240, image.YCbCrSubsampleRatio420), 96},
		{"1280x720 4:2:0", testJPEG(t, 1280, 720, image.YCbCrSubsampleRatio420), 96},
		{"640x480 4:2:2", yuyv422, 96},
		{"641x479 odd size", testJPEG(t, 641, 479, image.YCbCrSubsampleRatio420), 100},
		{"camera mjpeg frame", mediaFrame(t), 96},
		{"grey", grey(t), 48},
		{"progressive", testdata(t, "progressive-320x240.jpg"), 96},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			full := decode(t, tc.src)
			w, h := ThumbSize(full.Bounds().Dx(), full.Bounds().Dy(), tc.height)
			encodedBy(t, psnrLuma, w, h, shrinkRef(full, w, h), 30, 30, func(c Codec) ([]byte, error) {
				return c.Thumbnail(nil, tc.src, tc.height, 95)
			})
		})
	}
}

// Turbo0 is the first codec (turbo where built), for making test input.
func Turbo0() Codec { return Codecs()[0] }

func grey(t testing.TB) []byte {
	src := picture(160, 120)
	out, err := Go.EncodeGray(nil, &image.Gray{Pix: src.Y, Stride: src.YStride, Rect: src.Rect}, 90)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mediaFrame is the first frame of the repository's MJPEG test clip.
func mediaFrame(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "media", "testsrc-640x480-10frames.mjpeg"))
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.Index(b, []byte{0xff, 0xd9})
	if end < 0 {
		t.Fatal("no EOI in the clip")
	}
	return b[:end+2]
}

func TestThumbnailSmallSourceUnchanged(t *testing.T) {
	src := testJPEG(t, 128, 96, image.YCbCrSubsampleRatio420)
	for _, c := range Codecs() {
		out, err := c.Thumbnail([]byte("x"), src, 96, 80)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out[1:], src) || out[0] != 'x' {
			t.Errorf("%s: a source no taller than the target was re-encoded", c.Name())
		}
	}
}

func TestThumbnailGarbage(t *testing.T) {
	for _, c := range Codecs() {
		for _, src := range [][]byte{nil, []byte("not a jpeg at all"), {0xff, 0xd8, 0xff}} {
			if _, err := c.Thumbnail(nil, src, 96, 80); err == nil {
				t.Errorf("%s: %q gave no error", c.Name(), src)
			}
		}
	}
}

// TestConcurrent runs every path from several goroutines at once (the
// libjpeg states' free list and the scratch pool under -race).
func TestConcurrent(t *testing.T) {
	src := picture(320, 240)
	frame := yuyvOf(src)
	jpg := testJPEG(t, 320, 240, image.YCbCrSubsampleRatio420)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			c := Codecs()[g%len(Codecs())]
			var buf []byte
			for range 10 {
				var err error
				if buf, err = c.EncodeYUYV(buf[:0], frame, 320, 240, 80); err != nil {
					errs <- err
				}
				if buf, err = c.Thumbnail(buf[:0], jpg, 96, 80); err != nil {
					errs <- err
				}
				if _, err := jpeg.DecodeConfig(bytes.NewReader(buf)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
