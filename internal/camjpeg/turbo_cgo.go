//go:build cgo && !nolibjpeg

package camjpeg

// libjpeg-turbo is linked statically (Debian's libjpeg62-turbo-dev ships
// libjpeg.a for every architecture), so a cgo binary needs no libjpeg on
// the board, just as the pure-Go one does not. A native build finds the
// library where libjpeg62-turbo-dev puts it; a cross build (scripts/cross.sh,
// scripts/test-arm.sh, the virtual board) finds the target's copy that
// scripts/cross-libjpeg.sh fetch unpacks under build/cross-libjpeg, named
// below. -tags nolibjpeg builds the pure-Go codec only.

/*
#cgo LDFLAGS: -l:libjpeg.a
#cgo arm64 CFLAGS: -I${SRCDIR}/../../build/cross-libjpeg/arm64/usr/include -I${SRCDIR}/../../build/cross-libjpeg/arm64/usr/include/aarch64-linux-gnu
#cgo arm64 LDFLAGS: -L${SRCDIR}/../../build/cross-libjpeg/arm64/usr/lib/aarch64-linux-gnu
#cgo arm CFLAGS: -I${SRCDIR}/../../build/cross-libjpeg/armhf/usr/include -I${SRCDIR}/../../build/cross-libjpeg/armhf/usr/include/arm-linux-gnueabihf
#cgo arm LDFLAGS: -L${SRCDIR}/../../build/cross-libjpeg/armhf/usr/lib/arm-linux-gnueabihf
#include "turbo.h"
*/
import "C"

import (
	"fmt"
	"image"
	"sync"
	"unsafe"
)

// turboCodec drives turbo.c. Each call takes a cj_state (libjpeg's
// compressor and decompressor with their buffers) from a free list and
// gives it back; the list keeps at most maxIdleStates, freeing the rest, so
// C memory stays bounded by the busiest moment's concurrency.
type turboCodec struct{}

var turbo Codec = turboCodec{}

const maxIdleStates = 4

var states struct {
	mu   sync.Mutex
	idle []*C.cj_state
}

func getState() (*C.cj_state, error) {
	states.mu.Lock()
	if n := len(states.idle); n > 0 {
		st := states.idle[n-1]
		states.idle = states.idle[:n-1]
		states.mu.Unlock()
		return st, nil
	}
	states.mu.Unlock()
	st := C.cj_new()
	if st == nil {
		return nil, fmt.Errorf("libjpeg: out of memory")
	}
	return st, nil
}

func putState(st *C.cj_state) {
	states.mu.Lock()
	if len(states.idle) < maxIdleStates {
		states.idle = append(states.idle, st)
		st = nil
	}
	states.mu.Unlock()
	if st != nil {
		C.cj_free(st)
	}
}

// finish turns a turbo.c result into dst with the encoded bytes appended.
func finish(st *C.cj_state, rc C.int, dst []byte, op string) ([]byte, error) {
	if rc != 0 {
		return dst, fmt.Errorf("%s: libjpeg: %s", op, C.GoString(C.cj_msg(st)))
	}
	out := unsafe.Slice((*byte)(unsafe.Pointer(C.cj_out(st))), int(C.cj_outlen(st)))
	return append(dst, out...), nil
}

func ptr(b []byte) *C.uchar { return (*C.uchar)(unsafe.Pointer(unsafe.SliceData(b))) }

func (turboCodec) Name() string { return "turbo" }

func (turboCodec) EncodeYCbCr(dst []byte, img *image.YCbCr, quality int) ([]byte, error) {
	hs, vs, err := checkYCbCr(img)
	if err != nil {
		return dst, err
	}
	r := img.Rect
	st, err := getState()
	if err != nil {
		return dst, err
	}
	defer putState(st)
	yo, co := img.YOffset(r.Min.X, r.Min.Y), img.COffset(r.Min.X, r.Min.Y)
	rc := C.cj_encode_planes(st, ptr(img.Y[yo:]), ptr(img.Cb[co:]), ptr(img.Cr[co:]),
		C.int(img.YStride), C.int(img.CStride), C.int(r.Dx()), C.int(r.Dy()), C.int(hs), C.int(vs), C.int(checkQuality(quality)))
	return finish(st, rc, dst, "encode")
}

func (turboCodec) EncodeGray(dst []byte, img *image.Gray, quality int) ([]byte, error) {
	r := img.Rect
	w, h := r.Dx(), r.Dy()
	if w <= 0 || h <= 0 || w > maxSide || h > maxSide || img.Stride < w ||
		len(img.Pix) < img.PixOffset(r.Min.X, r.Min.Y)+(h-1)*img.Stride+w {
		return dst, sizeErr("encode", "grey image %v with %d bytes", r, len(img.Pix))
	}
	st, err := getState()
	if err != nil {
		return dst, err
	}
	defer putState(st)
	rc := C.cj_encode_planes(st, ptr(img.Pix[img.PixOffset(r.Min.X, r.Min.Y):]), nil, nil,
		C.int(img.Stride), 0, C.int(w), C.int(h), 1, 1, C.int(checkQuality(quality)))
	return finish(st, rc, dst, "encode")
}

func (turboCodec) EncodeYUYV(dst []byte, frame []byte, w, h, quality int) ([]byte, error) {
	if w%2 != 0 {
		return dst, sizeErr("yuyv", "odd width %d", w)
	}
	if err := checkPacked("yuyv", frame, w, h, w*h*2); err != nil {
		return dst, err
	}
	st, err := getState()
	if err != nil {
		return dst, err
	}
	defer putState(st)
	rc := C.cj_encode_yuyv(st, ptr(frame), C.int(w*2), C.int(w), C.int(h), C.int(checkQuality(quality)))
	return finish(st, rc, dst, "yuyv")
}

func (turboCodec) EncodeNV12(dst []byte, frame []byte, w, h, quality int) ([]byte, error) {
	if w%2 != 0 || h%2 != 0 {
		return dst, sizeErr("nv12", "odd size %dx%d", w, h)
	}
	if err := checkPacked("nv12", frame, w, h, w*h*3/2); err != nil {
		return dst, err
	}
	st, err := getState()
	if err != nil {
		return dst, err
	}
	defer putState(st)
	rc := C.cj_encode_nv12(st, ptr(frame), C.int(w), ptr(frame[w*h:]), C.int(w), C.int(w), C.int(h), C.int(checkQuality(quality)))
	return finish(st, rc, dst, "nv12")
}

// Thumbnail decodes at the largest of 1/8, 1/4, 1/2 that still leaves the
// image at least height high (640×480 to 96 high: 1/4, 160×120), shrinks
// that to the target with the same filter as the Go codec, and encodes it.
// A JPEG turbo.c does not take as planes (CMYK, RGB) goes to the Go codec.
func (turboCodec) Thumbnail(dst []byte, src []byte, height, quality int) ([]byte, error) {
	if height <= 0 {
		return dst, sizeErr("thumbnail", "height %d", height)
	}
	if len(src) == 0 {
		return dst, fmt.Errorf("thumbnail: empty image")
	}
	st, err := getState()
	if err != nil {
		return dst, err
	}
	defer putState(st)
	rc := C.cj_decode_scaled(st, ptr(src), C.ulong(len(src)), C.int(height))
	p := C.cj_decoded(st)
	switch rc {
	case 0:
	case 1:
		if int(p.height) <= height {
			return append(dst, src...), nil
		}
		return Go.Thumbnail(dst, src, height, quality)
	default:
		return dst, fmt.Errorf("thumbnail: libjpeg: %s", C.GoString(C.cj_msg(st)))
	}
	if int(p.height) <= height {
		return append(dst, src...), nil
	}
	w, h := ThumbSize(int(p.width), int(p.height), height)
	pl := func(i int) plane {
		if p.p[i] == nil {
			return plane{}
		}
		n := int(p.stride[i]) * int(p.h[i])
		return plane{pix: unsafe.Slice((*byte)(unsafe.Pointer(p.p[i])), n), stride: int(p.stride[i]),
			w: int(p.w[i]), h: int(p.h[i]), ew: float64(p.ew[i]), eh: float64(p.eh[i])}
	}
	s := getScratch()
	defer s.put()
	small := s.shrinkTo(pl(0), pl(1), pl(2), p.ncomp == 1, w, h)
	rc = C.cj_encode_planes(st, ptr(small.Y), ptr(small.Cb), ptr(small.Cr),
		C.int(small.YStride), C.int(small.CStride), C.int(w), C.int(h), 2, 2, C.int(checkQuality(quality)))
	return finish(st, rc, dst, "thumbnail")
}
