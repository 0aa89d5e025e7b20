package v4l2

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/edge-agent/edge-agent/sensors/h264"
)

// yuyvToJPEG encodes one packed YUYV (4:2:2) frame as a JPEG. The planes are
// copied into an image.YCbCr with 4:2:2 subsampling, which image/jpeg encodes
// without an RGB round trip. buf is reused between calls to keep allocation
// flat at camera frame rates.
type yuyvEncoder struct {
	img     *image.YCbCr
	buf     bytes.Buffer
	quality int
}

func (e *yuyvEncoder) encode(data []byte, w, h int) ([]byte, error) {
	if w <= 0 || h <= 0 || w%2 != 0 {
		return nil, fmt.Errorf("yuyv: bad size %dx%d", w, h)
	}
	if len(data) < w*h*2 {
		return nil, fmt.Errorf("yuyv: frame is %d bytes, want %d for %dx%d", len(data), w*h*2, w, h)
	}
	if e.img == nil || e.img.Rect.Dx() != w || e.img.Rect.Dy() != h {
		e.img = image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio422)
	}
	img := e.img
	for y := 0; y < h; y++ {
		row := data[y*w*2 : (y+1)*w*2]
		yo := y * img.YStride
		co := y * img.CStride
		for x := 0; x < w/2; x++ {
			p := row[x*4 : x*4+4]
			img.Y[yo+2*x] = p[0]
			img.Cb[co+x] = p[1]
			img.Y[yo+2*x+1] = p[2]
			img.Cr[co+x] = p[3]
		}
	}
	e.buf.Reset()
	q := e.quality
	if q == 0 {
		q = 85
	}
	if err := jpeg.Encode(&e.buf, img, &jpeg.Options{Quality: q}); err != nil {
		return nil, fmt.Errorf("yuyv: jpeg encode: %w", err)
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// auAssembler turns one V4L2 H.264 buffer (one access unit, as UVC and the
// Pi's M2M encoder deliver them) into a self-contained access unit: it caches
// the latest SPS and PPS and puts them in front of every IDR that lacks them,
// so a subscriber that joins late can start at the next keyframe.
type auAssembler struct {
	sps, pps []byte
}

// assemble returns the access unit in 4-byte start-code form and whether it
// is a keyframe. A buffer with no slice (parameter sets only) returns nil.
func (a *auAssembler) assemble(buf []byte) ([]byte, bool) {
	nals := h264.SplitNALs(buf)
	var hasSPS, hasPPS, idr, vcl bool
	for _, n := range nals {
		switch h264.NALType(n) {
		case h264.NALSPS:
			a.sps, hasSPS = bytes.Clone(n), true
		case h264.NALPPS:
			a.pps, hasPPS = bytes.Clone(n), true
		case h264.NALIDR:
			idr, vcl = true, true
		case h264.NALSlice:
			vcl = true
		}
	}
	if !vcl {
		return nil, false
	}
	const sc = "\x00\x00\x00\x01"
	out := make([]byte, 0, len(buf)+len(a.sps)+len(a.pps)+8)
	if idr && !hasSPS && a.sps != nil {
		out = append(append(out, sc...), a.sps...)
	}
	if idr && !hasPPS && a.pps != nil {
		out = append(append(out, sc...), a.pps...)
	}
	for _, n := range nals {
		out = append(append(out, sc...), n...)
	}
	// A keyframe must be decodable on its own: an IDR seen before any SPS/PPS
	// is passed on but not advertised as a starting point.
	return out, idr && a.sps != nil && a.pps != nil
}
