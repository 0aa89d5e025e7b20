package vboard

import (
	"encoding/binary"
	"math"
	"testing"
)

// The header is what aplay reads, and the samples are the sine asked for.
func TestToneWAV(t *testing.T) {
	b := ToneWAV(440, 12000, 16000, 1)
	le := binary.LittleEndian
	if string(b[0:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || string(b[36:40]) != "data" {
		t.Fatalf("header %q", b[:44])
	}
	if len(b) != 44+2*16000 || le.Uint32(b[40:]) != 2*16000 || le.Uint32(b[24:]) != 16000 || le.Uint16(b[22:]) != 1 {
		t.Fatalf("sizes/format wrong: len %d data %d rate %d channels %d", len(b), le.Uint32(b[40:]), le.Uint32(b[24:]), le.Uint16(b[22:]))
	}
	var peak int16
	for i := 0; i < 16000; i++ {
		v := int16(le.Uint16(b[44+2*i:]))
		want := math.Round(12000 * math.Sin(2*math.Pi*440*float64(i)/16000))
		if float64(v) != want {
			t.Fatalf("sample %d = %d, want %v", i, v, want)
		}
		peak = max(peak, v)
	}
	if peak < 11900 {
		t.Errorf("peak %d", peak)
	}
}
