// Package resample converts 16-bit PCM between sample rates with a
// polyphase FIR: the signal is notionally upsampled by L, low-pass filtered
// with a Kaiser-windowed sinc below both Nyquist limits, and decimated by M,
// where L/M is the rate ratio in lowest terms (48 kHz → 16 kHz is 1/3,
// 44.1 kHz → 16 kHz is 160/441). Only the taps that meet a real input sample
// are computed, so the cost per output sample and channel is Taps times the
// decimation factor (rounded up), whatever L is.
//
// USB microphones often capture only at 44.1 or 48 kHz; Edge Impulse wants
// 16 kHz and PCMU 8 kHz. Linear interpolation or dropping samples folds
// everything above the new Nyquist frequency back into the band as noise;
// this filter attenuates it by about 70 dB.
package resample

import (
	"fmt"
	"math"
)

// Taps is the filter length, in samples of the lower of the two rates. 48
// at a Kaiser β of 7 gives ~70 dB stop-band attenuation and a transition
// band of about 18% of the lower Nyquist frequency, which the cut-off puts
// just below it: 48 kHz → 16 kHz passes 6.5 kHz within 1 dB and stops
// everything above 8 kHz by 60 dB or more. The delay is Taps/2 samples at
// the lower rate (1.5 ms at 16 kHz).
const Taps = 48

const (
	kaiserBeta = 7.0
	// passband scales the cut-off below the lower Nyquist frequency, so the
	// transition band ends before it and little aliases back.
	passband = 0.90
	// maxPhases bounds L (the filter bank is L × Taps float32s): 441 covers
	// every common pair of rates (44.1 kHz ↔ 8/16/48 kHz).
	maxPhases = 1024
)

// Resampler converts interleaved s16 PCM from one rate to another, keeping
// the filter's history between calls, so a stream may be fed in blocks of
// any size and the output is the same as for one block.
// Not safe for concurrent use.
type Resampler struct {
	in, out  int
	channels int
	l, m     int
	taps     int         // per phase: how many input samples one output reads
	bank     [][]float32 // bank[p][j]: the tap for phase p and input sample n0-(taps-1)+j
	hist     [][]float32 // per channel, the last taps-1 input samples
	t        int         // next output's position, in 1/L input samples, from the start of hist
	buf      []float32
}

// New returns a Resampler from rate in to rate out (Hz) for channels
// interleaved channels.
func New(in, out, channels int) (*Resampler, error) {
	if in <= 0 || out <= 0 || channels <= 0 {
		return nil, fmt.Errorf("resample: rates %d → %d Hz with %d channels", in, out, channels)
	}
	g := gcd(in, out)
	l, m := out/g, in/g
	if l > maxPhases {
		return nil, fmt.Errorf("resample: %d → %d Hz needs %d filter phases (more than %d)", in, out, l, maxPhases)
	}
	taps := Taps * ((m + l - 1) / l) // decimating: the filter spans more input samples
	if m <= l {
		taps = Taps
	}
	r := &Resampler{in: in, out: out, channels: channels, l: l, m: m, taps: taps, bank: design(l, m, taps)}
	r.hist = make([][]float32, channels)
	for c := range r.hist {
		r.hist[c] = make([]float32, taps-1)
	}
	r.t = (taps - 1) * l // the first output lines up with the first new input sample
	return r, nil
}

// Rates returns the input and output rates.
func (r *Resampler) Rates() (in, out int) { return r.in, r.out }

// Process appends to dst the output for the interleaved samples in src
// (len(src) must be a multiple of the channel count) and returns it. Over a
// stream, the output has out/in times as many frames as the input, give or
// take one per call.
func (r *Resampler) Process(dst, src []int16) []int16 {
	frames := len(src) / r.channels
	if frames == 0 {
		return dst
	}
	hl := r.taps - 1
	if cap(r.buf) < hl+frames {
		r.buf = make([]float32, hl+frames)
	}
	buf := r.buf[:hl+frames]
	// avail is how far (in 1/L units) an output may sit: its newest input
	// sample n0 = t/L must exist.
	avail := (hl + frames) * r.l
	start := len(dst)
	for c := range r.channels {
		copy(buf, r.hist[c])
		for i := range frames {
			buf[hl+i] = float32(src[i*r.channels+c])
		}
		k := 0
		for t := r.t; t < avail; t += r.m {
			n0, p := t/r.l, t%r.l
			taps := r.bank[p]
			var acc float32
			x := buf[n0-hl : n0+1]
			x = x[:len(taps)]
			for j, h := range taps {
				acc += h * x[j]
			}
			if c == 0 {
				dst = append(dst, make([]int16, r.channels)...)
			}
			dst[start+k*r.channels+c] = clamp(acc)
			k++
		}
		copy(r.hist[c], buf[frames:])
	}
	t := r.t
	for t < avail {
		t += r.m
	}
	r.t = t - frames*r.l
	return dst
}

func clamp(v float32) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	case v >= 0:
		return int16(v + 0.5)
	default:
		return int16(v - 0.5)
	}
}

// design returns the polyphase bank of a Kaiser-windowed sinc low-pass of
// L×taps taps at the upsampled rate, cut off below the lower of the two
// Nyquist frequencies, with gain L (zero stuffing divides the level by L).
func design(l, m, taps int) [][]float32 {
	n := l * taps
	fc := passband * 0.5 / float64(max(l, m)) // cycles per upsampled sample
	center := float64(n-1) / 2
	bank := make([][]float32, l)
	for p := range bank {
		bank[p] = make([]float32, taps)
	}
	i0b := besselI0(kaiserBeta)
	for j := range n {
		x := float64(j) - center
		sinc := 2 * fc
		if x != 0 {
			sinc = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		ratio := 2*float64(j)/float64(n-1) - 1
		w := besselI0(kaiserBeta*math.Sqrt(1-ratio*ratio)) / i0b
		bank[j%l][taps-1-j/l] = float32(sinc * w * float64(l)) // stored oldest sample first
	}
	return bank
}

// besselI0 is the zeroth-order modified Bessel function of the first kind,
// by its power series (converges fast for the β used here).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < 1e-12*sum {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
