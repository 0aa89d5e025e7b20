package audio

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// TestChunkerResamples: PCM at a device's native 44.1 kHz, delivered in
// callback periods of odd sizes, comes out as 20 ms blocks at 16 kHz with
// the tone still at its frequency and level, and block times spaced by the
// block's duration.
func TestChunkerResamples(t *testing.T) {
	const native, rate, hz, amp = 44100, 16000, 440.0, 8000.0
	ck := newChunker(rate, 1)
	if err := ck.resampleFrom(native); err != nil {
		t.Fatal(err)
	}
	pcm := make([]byte, 0, 2*native)
	for i := range native { // 1 s
		v := int16(amp * math.Sin(2*math.Pi*hz*float64(i)/native))
		pcm = binary.LittleEndian.AppendUint16(pcm, uint16(v))
	}
	at := time.Unix(1000, 0)
	var blocks [][]byte
	var times []time.Time
	for off, i := 0, 0; off < len(pcm); i++ {
		n := min([]int{882, 2 * 441, 2 * 1024, 2 * 7}[i%4], len(pcm)-off) // even sizes: whole frames
		at = at.Add(time.Duration(n/2) * time.Second / native)
		for _, s := range ck.push(pcm[off:off+n], at) {
			blocks = append(blocks, s.Data)
			times = append(times, s.Time)
		}
		off += n
	}
	if len(blocks) < 49 || len(blocks) > 50 {
		t.Fatalf("%d blocks from 1 s, want 49 or 50 (20 ms each)", len(blocks))
	}
	for i, b := range blocks {
		if len(b) != 2*rate/50 {
			t.Fatalf("block %d has %d bytes, want %d", i, len(b), 2*rate/50)
		}
		if i > 0 && times[i].Sub(times[i-1]) != BlockDuration {
			t.Fatalf("block %d starts %v after the one before, want %v", i, times[i].Sub(times[i-1]), BlockDuration)
		}
	}
	// Goertzel-style level at hz and at a neighbour, over blocks 5..45.
	level := func(f float64) float64 {
		var re, im float64
		n := 0
		for _, b := range blocks[5:45] {
			for i := 0; i+1 < len(b); i += 2 {
				x := float64(int16(binary.LittleEndian.Uint16(b[i:])))
				ph := 2 * math.Pi * f * float64(n) / rate
				re += x * math.Cos(ph)
				im -= x * math.Sin(ph)
				n++
			}
		}
		return 2 * math.Hypot(re, im) / float64(n)
	}
	if got := level(hz); math.Abs(got-amp) > amp/50 {
		t.Errorf("440 Hz level %.0f after resampling, want %.0f ± 2%%", got, amp)
	}
	if off := level(hz * 16000 / 44100); off > amp/100 {
		t.Errorf("level %.0f at the frequency a tone would have if the rate were not converted", off)
	}
}

func TestChunkerSameRateNoConversion(t *testing.T) {
	ck := newChunker(16000, 1)
	if err := ck.resampleFrom(16000); err != nil || ck.rs != nil {
		t.Fatalf("resampleFrom(own rate) = %v, converter %v; want none", err, ck.rs)
	}
	// 44101 Hz → 16 kHz would need 16000 filter phases.
	if err := newChunker(16000, 1).resampleFrom(44101); err == nil {
		t.Error("resampleFrom(44101) accepted")
	}
}
