package v4l2

import (
	"bytes"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/logx"
	"github.com/edge-agent/edge-agent/sensors/h264"
	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
)

// mediaFile reads testdata/media/name at the module root.
// (v4l2test has the same helper but importing it here would be a cycle.)
func mediaFile(b testing.TB, name string) []byte {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			data, err := os.ReadFile(filepath.Join(dir, "testdata", "media", name))
			if err != nil {
				b.Fatalf("test media: %v", err)
			}
			return data
		}
		if filepath.Dir(dir) == dir {
			b.Fatal("test media: no go.mod above the working directory")
		}
		dir = filepath.Dir(dir)
	}
}

func benchProcessor(f Format) *processor {
	return &processor{fmt: f, warn: logx.NewLimited(nil, time.Hour), bad: new(atomic.Uint64)}
}

// BenchmarkFrame640x480 compares what one 640×480 camera frame costs the
// driver: MJPEG passthrough (validate, check for Huffman tables) against
// YUYV converted and JPEG-encoded.
func BenchmarkFrame640x480(b *testing.B) {
	jpg, err := mjpeg.NewSplitter(bytes.NewReader(mediaFile(b, "testsrc-640x480-10frames.mjpeg"))).Next()
	if err != nil {
		b.Fatal(err)
	}
	// The YUYV frame is the same test picture, so both paths see the same
	// image content (entropy matters to the encoder).
	img, err := jpeg.Decode(bytes.NewReader(jpg))
	if err != nil {
		b.Fatal(err)
	}
	yuyv := make([]byte, 0, 640*480*2)
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x += 2 {
			c0 := color.YCbCrModel.Convert(img.At(x, y)).(color.YCbCr)
			c1 := color.YCbCrModel.Convert(img.At(x+1, y)).(color.YCbCr)
			yuyv = append(yuyv, c0.Y, c0.Cb, c1.Y, c0.Cr)
		}
	}
	b.Run("mjpeg-passthrough", func(b *testing.B) {
		p := benchProcessor(Format{FourCC: FourCCMJPEG, Width: 640, Height: 480, FPS: 15})
		b.SetBytes(int64(len(jpg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := p.process(Frame{Data: jpg}); !ok {
				b.Fatal("frame rejected")
			}
		}
	})
	b.Run("yuyv-to-jpeg", func(b *testing.B) {
		p := benchProcessor(Format{FourCC: FourCCYUYV, Width: 640, Height: 480, FPS: 15})
		b.SetBytes(int64(len(yuyv)))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := p.process(Frame{Data: yuyv}); !ok {
				b.Fatal("frame rejected")
			}
		}
	})
}

// BenchmarkH264AccessUnit is the per-buffer cost of H.264 capture (NAL split,
// SPS/PPS caching) on the 320×240 test stream.
func BenchmarkH264AccessUnit(b *testing.B) {
	aus, err := h264.SplitAll(mediaFile(b, "testsrc-320x240-15fps-4s.h264"))
	if err != nil {
		b.Fatal(err)
	}
	p := benchProcessor(Format{FourCC: FourCCH264, Width: 320, Height: 240, FPS: 15})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.process(Frame{Data: aus[i%len(aus)].Data})
		i++
	}
}
