package resample_test

import (
	"math"
	"testing"

	"github.com/edge-agent/edge-agent/internal/resample"
)

// tone returns n frames of a sine at freq Hz, amplitude amp, at rate, in ch
// interleaved channels (channel c at phase c·π/4).
func tone(rate, n, ch int, freq, amp float64) []int16 {
	out := make([]int16, n*ch)
	for i := range n {
		for c := range ch {
			out[i*ch+c] = int16(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)+float64(c)*math.Pi/4))
		}
	}
	return out
}

// level returns the amplitude of channel c of x at freq Hz (a single-bin
// DFT over the whole signal, Goertzel-style), skipping the first skip frames
// (the filter's start-up).
func level(x []int16, ch, c, rate, skip int, freq float64) float64 {
	var re, im float64
	n := 0
	for i := skip; i*ch+c < len(x); i++ {
		ph := 2 * math.Pi * freq * float64(i) / float64(rate)
		v := float64(x[i*ch+c])
		re += v * math.Cos(ph)
		im -= v * math.Sin(ph)
		n++
	}
	return 2 * math.Hypot(re, im) / float64(n)
}

func TestKeepsInBandTone(t *testing.T) {
	for _, c := range []struct{ in, out int }{{48000, 16000}, {44100, 16000}, {16000, 8000}, {48000, 8000}, {8000, 16000}, {44100, 48000}} {
		r, err := resample.New(c.in, c.out, 1)
		if err != nil {
			t.Fatal(err)
		}
		y := r.Process(nil, tone(c.in, c.in, 1, 440, 10000)) // 1 s
		if want := c.out; abs(len(y)-want) > 1 {
			t.Errorf("%d→%d: %d samples from 1 s, want %d", c.in, c.out, len(y), want)
		}
		got := level(y, 1, 0, c.out, c.out/10, 440)
		if db := 20 * math.Log10(got/10000); math.Abs(db) > 0.2 {
			t.Errorf("%d→%d: 440 Hz at %.2f dB, want 0 ± 0.2", c.in, c.out, db)
		}
		if off := level(y, 1, 0, c.out, c.out/10, 466); off > 200 { // the tone stays at 440 Hz
			t.Errorf("%d→%d: energy at 466 Hz %.0f: the tone moved", c.in, c.out, off)
		}
	}
}

func TestRejectsWhatWouldAlias(t *testing.T) {
	// 11 kHz at 48 kHz is above 16 kHz's Nyquist (8 kHz): decimating without
	// a filter would fold it to 5 kHz.
	r, _ := resample.New(48000, 16000, 1)
	y := r.Process(nil, tone(48000, 48000, 1, 11000, 10000))
	if got := level(y, 1, 0, 16000, 1600, 5000); 20*math.Log10(got/10000) > -60 {
		t.Errorf("11 kHz folded to 5 kHz at %.1f dB, want below -60 dB", 20*math.Log10(got/10000))
	}
	// 6.5 kHz, inside the band, passes within 1 dB.
	r, _ = resample.New(48000, 16000, 1)
	y = r.Process(nil, tone(48000, 48000, 1, 6500, 10000))
	if db := 20 * math.Log10(level(y, 1, 0, 16000, 1600, 6500)/10000); db < -1 {
		t.Errorf("6.5 kHz at %.1f dB, want within 1 dB", db)
	}
	// 8.5 kHz, just above the new Nyquist, is stopped (it would fold to 7.5 kHz).
	r, _ = resample.New(48000, 16000, 1)
	y = r.Process(nil, tone(48000, 48000, 1, 8500, 10000))
	if db := 20 * math.Log10(level(y, 1, 0, 16000, 1600, 7500)/10000); db > -50 {
		t.Errorf("8.5 kHz folded to 7.5 kHz at %.1f dB, want below -50 dB", db)
	}
}

func TestBlocksGiveTheSameStream(t *testing.T) {
	in := tone(44100, 44100, 2, 1000, 12000)
	whole, _ := resample.New(44100, 16000, 2)
	want := whole.Process(nil, in)
	r, _ := resample.New(44100, 16000, 2)
	var got []int16
	for i, sizes := 0, []int{1, 7, 441, 1000, 3}; i < len(in)/2; {
		n := min(sizes[i%len(sizes)], len(in)/2-i)
		got = r.Process(got, in[2*i:2*(i+n)])
		i += n
	}
	if len(got) != len(want) {
		t.Fatalf("blocks gave %d samples, one call %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sample %d: %d in blocks, %d in one call", i, got[i], want[i])
		}
	}
	// Stereo channels keep their own signal (phase π/4 apart, same level).
	l0, l1 := level(got, 2, 0, 16000, 1600, 1000), level(got, 2, 1, 16000, 1600, 1000)
	if math.Abs(l0-l1) > 50 || math.Abs(l0-12000) > 300 {
		t.Errorf("channel levels %.0f and %.0f, want both 12000", l0, l1)
	}
}

func TestClipsInsteadOfWrapping(t *testing.T) {
	// A full-scale 100 Hz square wave overshoots by ~9% after a low-pass
	// (Gibbs) at every edge: those samples must clip at the int16 limits.
	// Wrapped around they would flip sign, adding thousands of sign changes
	// to the wave's own two per period (plus a few where an edge's output
	// sample lands on zero).
	for _, rates := range [][2]int{{48000, 16000}, {44100, 16000}, {8000, 16000}} {
		in := make([]int16, rates[0])
		for i := range in {
			in[i] = math.MaxInt16
			if (i*200/rates[0])%2 == 1 {
				in[i] = math.MinInt16
			}
		}
		r, _ := resample.New(rates[0], rates[1], 1)
		y := r.Process(nil, in)
		flips := 0
		for i := 1; i < len(y); i++ {
			if (y[i] < 0) != (y[i-1] < 0) {
				flips++
			}
		}
		if flips > 300 {
			t.Errorf("%d→%d: %d sign changes in 1 s of a 100 Hz square wave, want about 200", rates[0], rates[1], flips)
		}
	}
}

func TestRefusesBadRates(t *testing.T) {
	for _, c := range [][3]int{{0, 16000, 1}, {48000, 0, 1}, {48000, 16000, 0}, {48000, 47999, 1}} {
		if _, err := resample.New(c[0], c[1], c[2]); err == nil {
			t.Errorf("New(%v) accepted", c)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func BenchmarkResample48kTo16kMono(b *testing.B) {
	in := tone(48000, 480, 1, 440, 10000) // 10 ms blocks
	r, _ := resample.New(48000, 16000, 1)
	out := make([]int16, 0, 200)
	b.SetBytes(int64(2 * len(in)))
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
}

func BenchmarkResample44k1To16kMono(b *testing.B) {
	in := tone(44100, 441, 1, 440, 10000)
	r, _ := resample.New(44100, 16000, 1)
	out := make([]int16, 0, 200)
	b.SetBytes(int64(2 * len(in)))
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
}
