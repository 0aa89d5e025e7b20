package rtm

import (
	"encoding/binary"
	"math"
)

// PCMU needs 8 kHz mono; microphones deliver 16 kHz (or 48 kHz) s16le. The
// resampler below is a windowed-sinc low-pass FIR followed by linear
// interpolation at the output instants, in pure Go so the build needs no cgo.
//
// Quality: the filter has 48·M+1 taps (M = input rate / 8 kHz, rounded up;
// 97 at 16 kHz), a Blackman window and a 3.8 kHz cutoff: the voice band
// (300–3400 Hz) passes within about 1 dB, and everything above about 4.3 kHz,
// which would alias into the band, is attenuated by more than 50 dB
// (TestResamplerResponse checks both). The filter is evaluated only at the
// output instants, so 16 kHz input costs 97 multiply-adds per 8 kHz output
// sample. For integer ratios (16k→8k, 48k→8k) the interpolation weight is
// always 0 and the path is a plain decimator; other rates (44.1 kHz) use
// linear interpolation between filtered samples. The 8-bit µ-law step limits
// SNR to about 38 dB, far below anything the filter adds.

// resampler converts s16 mono at inRate to 8 kHz. It keeps filter history
// across blocks, so the output is continuous. Not safe for concurrent use;
// each audio pump owns one.
type resampler struct {
	inRate float64
	taps   []float64
	hist   []float64 // last len(taps)-1 input samples (filter history)
	pos    float64   // next output instant, in input samples relative to the block start
	buf    []float64 // history + current block (reused)
}

const pcmuRate = 8000

func newResampler(inRate int) *resampler {
	m := int(math.Ceil(float64(inRate) / pcmuRate))
	n := 48*m + 1
	fc := 3800.0 / float64(inRate) // normalised cutoff (cycles/sample)
	taps := make([]float64, n)
	var sum float64
	mid := float64(n-1) / 2
	for i := range taps {
		x := float64(i) - mid
		s := 2 * fc
		if x != 0 {
			s = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		w := 0.42 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1)) + 0.08*math.Cos(4*math.Pi*float64(i)/float64(n-1))
		taps[i] = s * w
		sum += taps[i]
	}
	for i := range taps {
		taps[i] /= sum // unity gain at DC
	}
	if inRate <= pcmuRate {
		taps = []float64{1} // no low-pass needed when not decimating
	}
	return &resampler{inRate: float64(inRate), taps: taps, hist: make([]float64, len(taps)-1)}
}

// process filters one block of mono samples and appends the 8 kHz output.
func (r *resampler) process(in []float64, out []int16) []int16 {
	nt := len(r.taps)
	buf := append(r.buf[:0], r.hist...)
	buf = append(buf, in...)
	r.buf = buf
	at := func(i int) float64 { // filtered input sample i of this block
		var acc float64
		for k, t := range r.taps {
			acc += buf[i+k] * t
		}
		return acc
	}
	step := r.inRate / pcmuRate
	for ; r.pos < float64(len(in)); r.pos += step {
		i := int(r.pos)
		f := r.pos - float64(i)
		v := at(i)
		if f > 0 && i+1 < len(in) { // at the block's last sample the next is unknown: hold
			v += (at(i+1) - v) * f
		}
		out = append(out, clip16(v))
	}
	r.pos -= float64(len(in)) // >= 0: the loop ran past the block
	copy(r.hist, buf[len(buf)-(nt-1):])
	return out
}

func clip16(v float64) int16 {
	v = math.Round(v)
	if v > math.MaxInt16 {
		return math.MaxInt16
	}
	if v < math.MinInt16 {
		return math.MinInt16
	}
	return int16(v)
}

// pcmToMono decodes s16le frames and averages channels into dst.
func pcmToMono(dst []float64, data []byte, channels int) []float64 {
	if channels < 1 {
		channels = 1
	}
	frame := 2 * channels
	for off := 0; off+frame <= len(data); off += frame {
		var s float64
		for c := 0; c < channels; c++ {
			s += float64(int16(binary.LittleEndian.Uint16(data[off+2*c:])))
		}
		dst = append(dst, s/float64(channels))
	}
	return dst
}

// linearToMuLaw is the G.711 µ-law encoder (ITU-T G.711, with the usual
// 0x84 bias and 14-bit clip).
func linearToMuLaw(s int16) byte {
	const bias, clip = 0x84, 32635
	x := int(s)
	sign := 0
	if x < 0 {
		x = -x
		sign = 0x80
	}
	if x > clip {
		x = clip
	}
	x += bias
	exp := 7
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (x >> (exp + 3)) & 0x0F
	return ^byte(sign | exp<<4 | mant)
}

// muLawToLinear decodes one µ-law byte (used by tests and the fake).
func muLawToLinear(u byte) int16 {
	u = ^u
	sign := u & 0x80
	exp := int(u>>4) & 7
	mant := int(u & 0x0F)
	x := ((mant << 3) + 0x84) << exp
	x -= 0x84
	if sign != 0 {
		return int16(-x)
	}
	return int16(x)
}

// MuLawToLinear decodes one G.711 µ-law byte to s16. Exported for the fake
// service and tests that check what was received.
func MuLawToLinear(u byte) int16 { return muLawToLinear(u) }

// pcmuEncoder turns s16le blocks of any size into 20 ms PCMU packets (160
// bytes). Not safe for concurrent use.
type pcmuEncoder struct {
	channels int
	rs       *resampler
	mono     []float64
	out16    []int16
	pending  []byte // µ-law bytes not yet a full packet
}

const pcmuPacket = pcmuRate / 50 // 20 ms

func newPCMUEncoder(rate, channels int) *pcmuEncoder {
	return &pcmuEncoder{channels: channels, rs: newResampler(rate)}
}

// encode consumes one PCM block and calls emit for every complete packet.
// emit must not keep the slice.
func (e *pcmuEncoder) encode(data []byte, emit func(pkt []byte) error) error {
	e.mono = pcmToMono(e.mono[:0], data, e.channels)
	e.out16 = e.rs.process(e.mono, e.out16[:0])
	for _, s := range e.out16 {
		e.pending = append(e.pending, linearToMuLaw(s))
	}
	for len(e.pending) >= pcmuPacket {
		if err := emit(e.pending[:pcmuPacket]); err != nil {
			return err
		}
		e.pending = append(e.pending[:0], e.pending[pcmuPacket:]...)
	}
	return nil
}
