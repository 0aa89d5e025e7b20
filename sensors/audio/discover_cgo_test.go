//go:build cgo

package audio

import (
	"slices"
	"testing"

	"github.com/gen2brain/malgo"
)

// TestDistinctRates: each rate once, ascending, whatever the formats and
// channel counts that repeat it; miniaudio's "any rate" (0) adds none.
func TestDistinctRates(t *testing.T) {
	formats := []malgo.DataFormat{
		{Format: malgo.FormatS16, Channels: 1, SampleRate: 48000},
		{Format: malgo.FormatS16, Channels: 2, SampleRate: 48000},
		{Format: malgo.FormatS16, Channels: 1, SampleRate: 44100},
		{Format: malgo.FormatS32, Channels: 1, SampleRate: 16000},
		{Format: malgo.FormatUnknown, SampleRate: 0},
	}
	if got := distinctRates(formats); !slices.Equal(got, []int{16000, 44100, 48000}) {
		t.Errorf("rates %v", got)
	}
	if got := distinctRates(nil); len(got) != 0 {
		t.Errorf("no formats: %v", got)
	}
}

// TestALSARates asks the production backend: ALSA's null PCM takes any rate,
// so it offers all of miniaudio's standard rates, 8 kHz to 384 kHz, among
// them the 16 kHz Edge Impulse uses and the 44.1/48 kHz of USB microphones.
// The rates of real cards are checked on the virtual board
// (TestBoardListRates).
func TestALSARates(t *testing.T) {
	devs := needALSA(t)
	for _, d := range devs {
		if d.ID != "null" {
			continue
		}
		if d.RatesError != "" || !slices.IsSorted(d.Rates) || len(slices.Compact(slices.Clone(d.Rates))) != len(d.Rates) {
			t.Fatalf("null: rates %v, error %q", d.Rates, d.RatesError)
		}
		for _, r := range []int{8000, 16000, 44100, 48000, 384000} {
			if !slices.Contains(d.Rates, r) {
				t.Errorf("null: rates %v lack %d", d.Rates, r)
			}
		}
		return
	}
	t.Skipf("needs ALSA's null PCM, which Debian's alsa.conf (package libasound2-data) defines; ALSA lists only %+v", devs)
}
