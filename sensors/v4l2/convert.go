package v4l2

import (
	"bytes"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
	"github.com/edge-agent/edge-agent/sensors/h264"
)

// yuyvEncoder encodes packed YUYV (4:2:2) frames as JPEGs through camjpeg:
// libjpeg-turbo from the camera's own planes in a cgo build, image/jpeg in
// a pure-Go one. buf is the encoder's output, reused from frame to frame;
// each frame then costs one allocation, the exact-size copy that becomes
// the sample (subscribers keep samples, so it cannot be reused). Used by
// the capture goroutine only.
type yuyvEncoder struct {
	buf     []byte
	quality int
}

func (e *yuyvEncoder) encode(data []byte, w, h int) ([]byte, error) {
	q := e.quality
	if q == 0 {
		q = 85
	}
	out, err := camjpeg.EncodeYUYV(e.buf[:0], data, w, h, q)
	e.buf = out[:0]
	if err != nil {
		return nil, err
	}
	return bytes.Clone(out), nil
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
