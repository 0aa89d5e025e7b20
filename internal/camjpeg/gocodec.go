package camjpeg

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"sync"
)

// goCodec is the pure-Go codec on image/jpeg. Its encoder converts any
// image.YCbCr to 4:2:0 itself; its decoder has no DCT scaling and returns a
// freshly allocated full-size image each call (the one allocation this
// package cannot pool), so Thumbnail shrinks from full size.
type goCodec struct{}

func (goCodec) Name() string { return "go" }

func (goCodec) EncodeYCbCr(dst []byte, img *image.YCbCr, quality int) ([]byte, error) {
	if _, _, err := checkYCbCr(img); err != nil {
		return dst, err
	}
	return goEncode(dst, img, quality)
}

func (goCodec) EncodeGray(dst []byte, img *image.Gray, quality int) ([]byte, error) {
	if img.Rect.Empty() {
		return dst, sizeErr("encode", "empty image")
	}
	return goEncode(dst, img, quality)
}

// goEncode appends img's JPEG to dst through an appendWriter.
func goEncode(dst []byte, img image.Image, quality int) ([]byte, error) {
	w := appendWriter{b: dst}
	if err := jpeg.Encode(&w, img, &jpeg.Options{Quality: checkQuality(quality)}); err != nil {
		return dst, fmt.Errorf("jpeg encode: %w", err)
	}
	return w.b, nil
}

func (goCodec) EncodeYUYV(dst []byte, frame []byte, w, h, quality int) ([]byte, error) {
	if w%2 != 0 {
		return dst, sizeErr("yuyv", "odd width %d", w)
	}
	if err := checkPacked("yuyv", frame, w, h, w*h*2); err != nil {
		return dst, err
	}
	s := getScratch()
	defer s.put()
	img := s.ycbcr(w, h, image.YCbCrSubsampleRatio422)
	for y := range h {
		row := frame[y*w*2 : (y+1)*w*2]
		yr := img.Y[y*img.YStride : y*img.YStride+w]
		cb := img.Cb[y*img.CStride : y*img.CStride+w/2]
		cr := img.Cr[y*img.CStride : y*img.CStride+w/2]
		for x := range w / 2 {
			p := row[x*4 : x*4+4]
			yr[2*x], cb[x], yr[2*x+1], cr[x] = p[0], p[1], p[2], p[3]
		}
	}
	return goEncode(dst, img, quality)
}

func (goCodec) EncodeNV12(dst []byte, frame []byte, w, h, quality int) ([]byte, error) {
	if w%2 != 0 || h%2 != 0 {
		return dst, sizeErr("nv12", "odd size %dx%d", w, h)
	}
	if err := checkPacked("nv12", frame, w, h, w*h*3/2); err != nil {
		return dst, err
	}
	s := getScratch()
	defer s.put()
	// The Y plane is used in place; only the chroma is de-interleaved.
	img := s.ycbcr(w/2, h/2, image.YCbCrSubsampleRatio444)
	uv := frame[w*h:]
	for i := range w / 2 * h / 2 {
		img.Cb[i], img.Cr[i] = uv[2*i], uv[2*i+1]
	}
	full := image.YCbCr{Y: frame[:w*h], Cb: img.Cb, Cr: img.Cr, YStride: w, CStride: w / 2,
		SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}
	return goEncode(dst, &full, quality)
}

var readerPool = sync.Pool{New: func() any { return new(bytes.Reader) }}

func (goCodec) Thumbnail(dst []byte, src []byte, height, quality int) ([]byte, error) {
	if height <= 0 {
		return dst, sizeErr("thumbnail", "height %d", height)
	}
	r := readerPool.Get().(*bytes.Reader)
	r.Reset(src)
	m, err := jpeg.Decode(r)
	r.Reset(nil)
	readerPool.Put(r)
	if err != nil {
		return dst, fmt.Errorf("thumbnail: %w", err)
	}
	b := m.Bounds()
	if b.Dy() <= height {
		return append(dst, src...), nil
	}
	w, h := ThumbSize(b.Dx(), b.Dy(), height)
	s := getScratch()
	defer s.put()
	var small *image.YCbCr
	switch m := m.(type) {
	case *image.YCbCr:
		y, cb, cr := planesOf(m)
		small = s.shrinkTo(y, cb, cr, false, w, h)
	case *image.Gray:
		small = s.shrinkTo(plane{pix: m.Pix, stride: m.Stride, w: b.Dx(), h: b.Dy()}, plane{}, plane{}, true, w, h)
	default:
		// CMYK (Adobe) JPEGs: convert once to 4:4:4, then shrink as usual.
		full := image.NewYCbCr(b, image.YCbCrSubsampleRatio444)
		draw.Draw(&ycbcrDrawer{full}, b, m, b.Min, draw.Src)
		y, cb, cr := planesOf(full)
		small = s.shrinkTo(y, cb, cr, false, w, h)
	}
	return goEncode(dst, small, quality)
}

// planesOf returns the three planes of m from its rectangle's origin.
func planesOf(m *image.YCbCr) (y, cb, cr plane) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	dx, dy := 1, 1 // chroma sampling divisors
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio420:
		dx, dy = 2, 2
	case image.YCbCrSubsampleRatio422:
		dx = 2
	case image.YCbCrSubsampleRatio440:
		dy = 2
	case image.YCbCrSubsampleRatio411:
		dx = 4
	case image.YCbCrSubsampleRatio410:
		dx, dy = 4, 2
	}
	cw, ch := (w+dx-1)/dx, (h+dy-1)/dy
	ew, eh := float64(w)/float64(dx), float64(h)/float64(dy)
	yo, co := m.YOffset(b.Min.X, b.Min.Y), m.COffset(b.Min.X, b.Min.Y)
	return plane{pix: m.Y[yo:], stride: m.YStride, w: w, h: h},
		plane{pix: m.Cb[co:], stride: m.CStride, w: cw, h: ch, ew: ew, eh: eh},
		plane{pix: m.Cr[co:], stride: m.CStride, w: cw, h: ch, ew: ew, eh: eh}
}

// ycbcrDrawer lets draw.Draw fill a 4:4:4 image.YCbCr (which has no Set).
type ycbcrDrawer struct{ *image.YCbCr }

func (d *ycbcrDrawer) Set(x, y int, c color.Color) {
	v := color.YCbCrModel.Convert(c).(color.YCbCr)
	i, j := d.YOffset(x, y), d.COffset(x, y)
	d.Y[i], d.Cb[j], d.Cr[j] = v.Y, v.Cb, v.Cr
}
