package serial

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// BenchmarkParseLine: one typical 3-axis line.
func BenchmarkParseLine(b *testing.B) {
	line := []byte("-0.123,9.806,0.044\r\n")
	dst := make([]float64, 0, MaxAxes)
	b.SetBytes(int64(len(line)))
	for range b.N {
		if _, err := ParseLine(line, dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkFeed: the whole per-Run path (line assembly across 4 KiB reads,
// parse, row allocation, channel send) on a stream of 3-axis lines.
func BenchmarkFeed(b *testing.B) {
	var stream []byte
	for i := range 1000 {
		stream = fmt.Appendf(stream, "%d,%d,%d\r\n", i, -2*i, 9806)
	}
	src, err := NewSource("b", Config{Port: "/dev/null", Frequency: 1000, Axes: []string{"x", "y", "z"}}, sensors.Env{})
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan sensors.Sample, 1024)
	done := make(chan struct{})
	go func() {
		for range out {
		}
		close(done)
	}()
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	at := time.Now()
	for range b.N {
		st := src.newRunState()
		st.skipping = false
		for off := 0; off < len(stream); off += 4096 {
			st.feed(context.Background(), out, stream[off:min(off+4096, len(stream))], at)
		}
	}
	b.StopTimer()
	close(out)
	<-done
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "lines/s")
}
