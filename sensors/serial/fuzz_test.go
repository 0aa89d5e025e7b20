package serial

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// FuzzParseLine: never panics; accepted lines give 1..MaxAxes finite values.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"1,2,3\r\n", "0.1\t0.2\t9.81", "x,y,z", "1e400,1", "NaN", "  ,, ;", "-0x1p-2,3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		v, err := ParseLine(line, nil)
		if err != nil {
			return
		}
		if len(v) == 0 || len(v) > MaxAxes {
			t.Fatalf("%d values", len(v))
		}
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("non-finite %v from %q", x, line)
			}
		}
	})
}

// FuzzFeed: any byte stream, cut anywhere, yields rows that all have the
// detected axis count, and every line is either a row, blank, held back or
// counted as malformed.
func FuzzFeed(f *testing.F) {
	f.Add([]byte("junk\n1,2,3\n4,5,6\n7,8,9\nx,y\n10,11,12\n"), uint8(3))
	f.Add([]byte("\n1 2\n3 4\n5 6 7\n8 9\n1 1\n2 2\n"), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		src, err := NewSource("f", Config{Port: "/dev/null", Frequency: 100}, sensors.Env{})
		if err != nil {
			t.Fatal(err)
		}
		st := src.newRunState()
		out := make(chan sensors.Sample, len(stream)+1)
		step := int(cut%32) + 1
		at := time.Unix(0, 0)
		for len(stream) > 0 {
			n := min(step, len(stream))
			at = at.Add(time.Millisecond)
			if !st.feed(context.Background(), out, stream[:n], at) {
				t.Fatal("feed stopped without cancellation")
			}
			stream = stream[n:]
		}
		close(out)
		for s := range out {
			if len(s.Values) != st.nAxes || st.nAxes == 0 {
				t.Fatalf("row with %d values, axes %d", len(s.Values), st.nAxes)
			}
		}
	})
}
