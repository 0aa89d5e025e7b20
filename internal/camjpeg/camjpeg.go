// Package camjpeg holds the JPEG work of the camera paths: raw YUYV and
// NV12 frames and planar YCbCr images encoded to JPEG, and low-resolution
// previews made from a JPEG (decode, shrink, encode). On a Pi Zero 2 W this
// is most of what a camera costs the agent, so it has two implementations:
//
//   - Turbo, on libjpeg-turbo through cgo (built with cgo, the Pi builds
//     that have the microphone, unless -tags nolibjpeg): encodes straight
//     from the camera's subsampled planes, and decodes a preview at 1/2, 1/4
//     or 1/8 scale in the IDCT, so the full-size image is never produced;
//   - Go, on the standard library's image/jpeg (every build, the only one
//     with CGO_ENABLED=0). image/jpeg has no DCT scaling, so a Go preview
//     decodes the whole image and shrinks it afterwards.
//
// Default is Turbo where it was built, Go otherwise; the package functions
// use Default. Both produce baseline JPEGs of the same size from the same
// input, with the same resize filter; the tests hold their pictures to a
// PSNR bound against each other.
//
// Every function appends to a dst slice the caller owns and keeps its
// scratch (planes, libjpeg state) in pools, so a caller that reuses dst
// allocates nothing per frame. All functions and both codecs are safe for
// concurrent use.
package camjpeg

import (
	"errors"
	"fmt"
	"image"
)

// Codec is one implementation of the camera JPEG paths.
type Codec interface {
	// Name is "turbo" or "go".
	Name() string
	// EncodeYCbCr appends img encoded at quality (1..100) to dst. The
	// image's chroma subsampling is kept when it is 4:2:0, 4:2:2 or 4:4:4
	// (image/jpeg writes 4:2:0 whatever it is given).
	EncodeYCbCr(dst []byte, img *image.YCbCr, quality int) ([]byte, error)
	// EncodeGray appends a greyscale JPEG of img to dst.
	EncodeGray(dst []byte, img *image.Gray, quality int) ([]byte, error)
	// EncodeYUYV appends the JPEG (4:2:2) of one packed YUYV frame of w×h
	// pixels (w even; frame holds at least w*h*2 bytes, rows w*2 apart).
	EncodeYUYV(dst []byte, frame []byte, w, h, quality int) ([]byte, error)
	// EncodeNV12 appends the JPEG (4:2:0) of one NV12 frame: a w×h Y plane
	// then a plane of interleaved Cb,Cr pairs at half resolution (w, h even).
	EncodeNV12(dst []byte, frame []byte, w, h, quality int) ([]byte, error)
	// Thumbnail appends to dst src shrunk to height pixels high (the width
	// keeps the aspect ratio) and encoded at quality as 4:2:0. A source no
	// taller than height is appended unchanged.
	Thumbnail(dst []byte, src []byte, height, quality int) ([]byte, error)
}

// Go is the pure-Go codec (image/jpeg), present in every build.
var Go Codec = goCodec{}

// Turbo is the libjpeg-turbo codec; nil in a build without cgo.
var Turbo Codec = turbo

// Default is the codec the package functions use: Turbo where it was
// built, else Go.
var Default = func() Codec {
	if Turbo != nil {
		return Turbo
	}
	return Go
}()

// Codecs lists the codecs this build has, Default first.
func Codecs() []Codec {
	if Turbo != nil {
		return []Codec{Turbo, Go}
	}
	return []Codec{Go}
}

// EncodeYCbCr is Default.EncodeYCbCr.
func EncodeYCbCr(dst []byte, img *image.YCbCr, quality int) ([]byte, error) {
	return Default.EncodeYCbCr(dst, img, quality)
}

// EncodeYUYV is Default.EncodeYUYV.
func EncodeYUYV(dst []byte, frame []byte, w, h, quality int) ([]byte, error) {
	return Default.EncodeYUYV(dst, frame, w, h, quality)
}

// EncodeNV12 is Default.EncodeNV12.
func EncodeNV12(dst []byte, frame []byte, w, h, quality int) ([]byte, error) {
	return Default.EncodeNV12(dst, frame, w, h, quality)
}

// Thumbnail is Default.Thumbnail.
func Thumbnail(dst []byte, src []byte, height, quality int) ([]byte, error) {
	return Default.Thumbnail(dst, src, height, quality)
}

// ErrSize reports frame dimensions or a buffer length that do not fit.
var ErrSize = errors.New("bad frame size")

// ThumbSize is the size Thumbnail gives a w×h image shrunk to height: the
// width rounded to keep the aspect ratio, at least 1.
func ThumbSize(w, h, height int) (int, int) {
	return max(1, (w*height+h/2)/h), height
}

func checkQuality(q int) int {
	return min(max(q, 1), 100)
}

// sizeErr wraps ErrSize with the operation and what did not fit.
func sizeErr(op, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", op, fmt.Sprintf(format, args...), ErrSize)
}

// checkPacked validates a packed frame of w×h pixels that needs total bytes.
func checkPacked(op string, frame []byte, w, h, total int) error {
	if w <= 0 || h <= 0 || w > maxSide || h > maxSide {
		return sizeErr(op, "%dx%d", w, h)
	}
	if len(frame) < total {
		return sizeErr(op, "%d bytes, want %d for %dx%d", len(frame), total, w, h)
	}
	return nil
}

// maxSide bounds each dimension (JPEG allows 65535; cameras stay far below
// and the plane arithmetic stays well inside int on 32-bit ARM).
const maxSide = 1 << 14

// checkYCbCr validates img's planes against its rectangle and returns the
// luma sampling factors (hs, vs) relative to chroma.
func checkYCbCr(img *image.YCbCr) (hs, vs int, err error) {
	r := img.Rect
	w, h := r.Dx(), r.Dy()
	if w <= 0 || h <= 0 || w > maxSide || h > maxSide {
		return 0, 0, sizeErr("encode", "%dx%d", w, h)
	}
	switch img.SubsampleRatio {
	case image.YCbCrSubsampleRatio420:
		hs, vs = 2, 2
	case image.YCbCrSubsampleRatio422:
		hs, vs = 2, 1
	case image.YCbCrSubsampleRatio444:
		hs, vs = 1, 1
	case image.YCbCrSubsampleRatio440:
		hs, vs = 1, 2
	default:
		return 0, 0, sizeErr("encode", "subsampling %v", img.SubsampleRatio)
	}
	cw, ch := (w+hs-1)/hs, (h+vs-1)/vs
	cEnd := img.COffset(r.Min.X, r.Min.Y) + (ch-1)*img.CStride + cw
	if img.YStride < w || img.CStride < cw ||
		len(img.Y) < img.YOffset(r.Min.X, r.Min.Y)+(h-1)*img.YStride+w ||
		len(img.Cb) < cEnd || len(img.Cr) < cEnd {
		return 0, 0, sizeErr("encode", "planes shorter than a %dx%d image", w, h)
	}
	return hs, vs, nil
}
