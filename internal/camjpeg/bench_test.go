package camjpeg

import (
	"fmt"
	"image"
	"testing"
)

// The per-operation benchmarks, each codec at the three camera sizes, on
// the test picture (flat areas, gradients, edges). -benchmem shows the
// steady path's allocations: dst is reused as a caller that pools its
// output does. scripts/camera-bench.sh compares the same operations with
// libvips, cjpeg/djpeg and ffmpeg on shared input files.

var benchSizes = []image.Point{{320, 240}, {640, 480}, {1280, 720}}

func benchCodecs(b *testing.B, f func(b *testing.B, c Codec, sz image.Point)) {
	for _, c := range Codecs() {
		for _, sz := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dx%d", c.Name(), sz.X, sz.Y), func(b *testing.B) {
				b.ReportAllocs()
				f(b, c, sz)
			})
		}
	}
}

// BenchmarkThumbnail is the Edge Impulse low-resolution snapshot: a 4:2:0
// JPEG (quality 85) to 96 px high at quality 80.
func BenchmarkThumbnail(b *testing.B) {
	benchCodecs(b, func(b *testing.B, c Codec, sz image.Point) {
		src, err := Go.EncodeYCbCr(nil, subsample(picture(sz.X, sz.Y), image.YCbCrSubsampleRatio420), 85)
		if err != nil {
			b.Fatal(err)
		}
		var buf []byte
		for b.Loop() {
			if buf, err = c.Thumbnail(buf[:0], src, 96, 80); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeYUYV is a YUYV camera frame to JPEG at quality 85.
func BenchmarkEncodeYUYV(b *testing.B) {
	benchCodecs(b, func(b *testing.B, c Codec, sz image.Point) {
		frame := yuyvOf(picture(sz.X, sz.Y))
		b.SetBytes(int64(len(frame)))
		var buf []byte
		var err error
		for b.Loop() {
			if buf, err = c.EncodeYUYV(buf[:0], frame, sz.X, sz.Y, 85); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeNV12 is an NV12 frame to JPEG at quality 85.
func BenchmarkEncodeNV12(b *testing.B) {
	benchCodecs(b, func(b *testing.B, c Codec, sz image.Point) {
		frame := nv12Of(picture(sz.X, sz.Y))
		b.SetBytes(int64(len(frame)))
		var buf []byte
		var err error
		for b.Loop() {
			if buf, err = c.EncodeNV12(buf[:0], frame, sz.X, sz.Y, 85); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeYCbCr420 is a planar 4:2:0 image to JPEG at quality 75
// (the synthetic camera's frames).
func BenchmarkEncodeYCbCr420(b *testing.B) {
	benchCodecs(b, func(b *testing.B, c Codec, sz image.Point) {
		img := subsample(picture(sz.X, sz.Y), image.YCbCrSubsampleRatio420)
		var buf []byte
		var err error
		for b.Loop() {
			if buf, err = c.EncodeYCbCr(buf[:0], img, 75); err != nil {
				b.Fatal(err)
			}
		}
	})
}
