//go:build cgo && !nolibjpeg

package camjpeg

/*
#include "turbo.h"
*/
import "C"

import (
	"fmt"
	"image/color"
	"unsafe"
)

// decodeReduced decodes src with turbo.c at the scale that leaves it minh
// high (cj_decode_scaled picks it) and converts the planes to pixels.
func decodeReduced(dst, src []byte, minh int, gray bool) ([]byte, int, int, bool, error) {
	st, err := getState()
	if err != nil {
		return dst, 0, 0, false, err
	}
	defer putState(st)
	rc := C.cj_decode_scaled(st, ptr(src), C.ulong(len(src)), C.int(minh))
	switch rc {
	case 0:
	case 1:
		return dst, 0, 0, false, nil
	default:
		return dst, 0, 0, false, fmt.Errorf("decode: libjpeg: %s", C.GoString(C.cj_msg(st)))
	}
	p := C.cj_decoded(st)
	pl := func(i int) plane {
		if p.p[i] == nil {
			return plane{}
		}
		n := int(p.stride[i]) * int(p.h[i])
		return plane{pix: unsafe.Slice((*byte)(unsafe.Pointer(p.p[i])), n), stride: int(p.stride[i]),
			w: int(p.w[i]), h: int(p.h[i]), ew: float64(p.ew[i]), eh: float64(p.eh[i])}
	}
	y := pl(0)
	if p.ncomp == 1 {
		return appendGray(dst, y, gray), y.w, y.h, true, nil
	}
	if gray {
		return appendGray(dst, y, true), y.w, y.h, true, nil
	}
	return appendRGB(dst, y, pl(1), pl(2)), y.w, y.h, true, nil
}

// appendGray appends the luma plane y as one byte a pixel, or three (grey
// RGB) unless gray.
func appendGray(dst []byte, y plane, gray bool) []byte {
	for r := range y.h {
		row := y.pix[r*y.stride : r*y.stride+y.w]
		if gray {
			dst = append(dst, row...)
			continue
		}
		for _, v := range row {
			dst = append(dst, v, v, v)
		}
	}
	return dst
}

// appendRGB converts the planes to RGB pixels at luma resolution, each
// chroma sample taken from where the pixel's centre falls in its plane
// (nearest, as image/jpeg's YCbCr image does).
func appendRGB(dst []byte, y, cb, cr plane) []byte {
	yw, yh := y.extent()
	bx, by := cb.extent()
	rx, ry := cr.extent()
	bx, by, rx, ry = bx/yw, by/yh, rx/yw, ry/yh
	for r := range y.h {
		yrow := y.pix[r*y.stride : r*y.stride+y.w]
		fr := float64(r) + 0.5
		bo := min(int(fr*by), cb.h-1) * cb.stride
		ro := min(int(fr*ry), cr.h-1) * cr.stride
		for x, lv := range yrow {
			fx := float64(x) + 0.5
			rr, g, b := color.YCbCrToRGB(lv, cb.pix[bo+min(int(fx*bx), cb.w-1)], cr.pix[ro+min(int(fx*rx), cr.w-1)])
			dst = append(dst, rr, g, b)
		}
	}
	return dst
}
