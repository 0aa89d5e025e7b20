package audio

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// TestPump drives the backend-independent half of Run with synthetic PCM:
// normal capture, the device stopping (unplug), a stall, and cancellation.
func TestPump(t *testing.T) {
	tests := []struct {
		name    string
		end     string // how the feed ends: stop | stall | cancel
		wantErr error
	}{
		{name: "device stops", end: "stop", wantErr: errStopped},
		{name: "device stalls", end: "stall", wantErr: errStalled},
		{name: "cancelled", end: "cancel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			blocks := make(chan capture, 8)
			stopped := make(chan struct{}, 1)
			out := make(chan sensors.Sample, 16)
			at := time.Unix(1000, 0)
			for i := range 5 { // 5 × 10 ms = 2.5 blocks of 20 ms
				at = at.Add(10 * time.Millisecond)
				blocks <- capture{at: at, pcm: sine(16000, 160*i, 160)}
			}
			errc := make(chan error, 1)
			go func() { errc <- pump(ctx, out, newChunker(16000, 1), blocks, stopped, 50*time.Millisecond) }()
			for i := range 2 {
				s := <-out
				if s.Seq != uint64(i) || len(s.Data) != 640 {
					t.Fatalf("block %d: seq %d, %d bytes", i, s.Seq, len(s.Data))
				}
				if want := sine(16000, 320*i, 320); string(s.Data) != string(want) {
					t.Fatalf("block %d PCM differs", i)
				}
			}
			switch tc.end {
			case "stop":
				stopped <- struct{}{}
			case "cancel":
				cancel()
			}
			if err := <-errc; !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("pump = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
