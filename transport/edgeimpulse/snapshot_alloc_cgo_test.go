//go:build cgo && !nolibjpeg && !race

package edgeimpulse

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// TestSnapshotFrameSteadyAllocsTurbo: with libjpeg-turbo a warm snapshot
// stream's steady path allocates nothing per frame, shrink included: the
// stream's scaler appends each preview to the last one's buffer. Not built
// with -race, whose sync.Pool (camjpeg's scratch) drops items on purpose,
// nor without libjpeg-turbo, where image/jpeg's decoder allocates.
func TestSnapshotFrameSteadyAllocsTurbo(t *testing.T) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 640, 480)), nil); err != nil {
		t.Fatal(err)
	}
	var shrink scaler
	next := func() []byte {
		small, err := shrink.scale(t.Context(), nil, buf.Bytes(), lowHeight)
		if err != nil {
			t.Fatal(err)
		}
		return small
	}
	for _, enc := range []Encoding{JSON, CBOR} {
		if n := frameAllocs(t, enc, next); n != 0 {
			t.Errorf("%s: %v allocations per frame, want 0", enc, n)
		}
	}
}
