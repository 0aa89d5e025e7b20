package synthetic_test

import (
	"fmt"
	"testing"

	"github.com/edge-agent/edge-agent/sensors/synthetic"
)

// BenchmarkCameraFrame is what one synthetic camera frame costs: drawing
// the pattern and encoding it (the demo's camera at 10 fps pays it ten
// times a second). The one allocation is the frame handed to the hub.
func BenchmarkCameraFrame(b *testing.B) {
	for _, sz := range [][2]int{{320, 240}, {640, 480}, {1280, 720}} {
		b.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(b *testing.B) {
			src := synthetic.NewCamera("cam", cfg("camera", func(c *synthetic.Config) { c.Width, c.Height = sz[0], sz[1] }))
			b.ReportAllocs()
			var n uint64
			for b.Loop() {
				if _, err := src.Frame(n); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
	}
}
