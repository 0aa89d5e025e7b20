//go:build cgo && !nolibjpeg && !race

package camjpeg

import (
	"image"
	"testing"
)

// TestSteadyPathAllocations: with dst reused, encoding a camera frame and
// making a preview allocate nothing on the turbo codec (the Go codec's
// decoder allocates its full-size image; its figure is in the benchmarks).
// Not built with -race, whose sync.Pool drops items on purpose.
func TestSteadyPathAllocations(t *testing.T) {
	frame := yuyvOf(picture(640, 480))
	jpg := testJPEG(t, 640, 480, image.YCbCrSubsampleRatio420)
	buf := make([]byte, 0, 256<<10)
	for name, f := range map[string]func(){
		"yuyv":      func() { buf, _ = Turbo.EncodeYUYV(buf[:0], frame, 640, 480, 85) },
		"thumbnail": func() { buf, _ = Turbo.Thumbnail(buf[:0], jpg, 96, 80) },
	} {
		f()
		if n := testing.AllocsPerRun(50, f); n != 0 {
			t.Errorf("%s: %.0f allocations per frame, want 0", name, n)
		}
	}
}
