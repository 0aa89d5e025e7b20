package audio

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/resample"
	"github.com/edge-agent/edge-agent/sensors"
)

// BlockDuration is the span of one Audio sample the source emits.
const BlockDuration = 20 * time.Millisecond

// maxClockSkew is how far the sample clock (first block time + frames/rate)
// may drift from the arrival clock before it is re-anchored (after dropped
// callbacks or a stalled device).
const maxClockSkew = 50 * time.Millisecond

// chunker regroups PCM as delivered by the audio callback (any size) into
// blocks of exactly BlockDuration, so that every link sees the same framing
// whatever the backend's period. Block times come from a sample clock
// (frames / rate since the first block) so they are evenly spaced; the
// clock is re-anchored to arrival time when the two drift apart. Not safe
// for concurrent use: the Run goroutine owns it.
type chunker struct {
	rate       int
	frameBytes int // bytes per frame (2 × channels for s16)
	blockBytes int

	pend    []byte
	seq     uint64
	anchor  time.Time // time of frame `anchorF`
	anchorF uint64
	frames  uint64 // frames emitted so far

	// rs converts the device's native rate to rate (nil: same rate).
	rs        *resample.Resampler
	in, outS  []int16
	converted []byte
}

func newChunker(rate, channels int) *chunker {
	fb := 2 * channels
	frames := int(int64(rate) * int64(BlockDuration) / int64(time.Second)) // int64: overflows a 32-bit int on armhf

	return &chunker{rate: rate, frameBytes: fb, blockBytes: frames * fb}
}

// resampleFrom makes the chunker take PCM at native Hz and convert it to its
// own rate, for devices that cannot capture at the configured rate (USB
// microphones that offer only 44.1 or 48 kHz).
func (c *chunker) resampleFrom(native int) error {
	if native == c.rate {
		c.rs = nil
		return nil
	}
	rs, err := resample.New(native, c.rate, c.frameBytes/2)
	if err != nil {
		return fmt.Errorf("convert %d Hz to %d Hz: %w", native, c.rate, err)
	}
	c.rs = rs
	return nil
}

// convert resamples s16le PCM with c.rs; the result is valid until the next
// call.
func (c *chunker) convert(pcm []byte) []byte {
	c.in = c.in[:0]
	for i := 0; i+1 < len(pcm); i += 2 {
		c.in = append(c.in, int16(binary.LittleEndian.Uint16(pcm[i:])))
	}
	c.outS = c.rs.Process(c.outS[:0], c.in)
	c.converted = c.converted[:0]
	for _, v := range c.outS {
		c.converted = binary.LittleEndian.AppendUint16(c.converted, uint16(v))
	}
	return c.converted
}

// push adds PCM that finished arriving at `at` and returns the complete
// blocks. With resampleFrom set, pcm is at the native rate. Trailing partial frames never occur with s16 callbacks, but a
// partial block is kept for the next push.
func (c *chunker) push(pcm []byte, at time.Time) []sensors.Sample {
	if c.rs != nil {
		pcm = c.convert(pcm)
	}
	// Time of the first pending frame according to the arrival clock.
	arrivalStart := at.Add(-c.dur(uint64((len(c.pend) + len(pcm)) / c.frameBytes)))
	if c.anchor.IsZero() {
		c.anchor, c.anchorF = arrivalStart, c.frames
	} else if d := c.timeOf(c.frames).Sub(arrivalStart); d > maxClockSkew || d < -maxClockSkew {
		c.anchor, c.anchorF = arrivalStart, c.frames
	}
	c.pend = append(c.pend, pcm...)
	var out []sensors.Sample
	for len(c.pend) >= c.blockBytes {
		block := make([]byte, c.blockBytes)
		copy(block, c.pend)
		n := uint64(c.blockBytes / c.frameBytes)
		out = append(out, sensors.Sample{
			Class: sensors.Audio, Time: c.timeOf(c.frames), Seq: c.seq,
			Data: block, Duration: c.dur(n),
		})
		c.seq++
		c.frames += n
		c.pend = c.pend[:copy(c.pend, c.pend[c.blockBytes:])]
	}
	return out
}

// timeOf is the sample-clock time of frame f.
func (c *chunker) timeOf(f uint64) time.Time { return c.anchor.Add(c.dur(f - c.anchorF)) }

func (c *chunker) dur(frames uint64) time.Duration {
	return time.Duration(frames * uint64(time.Second) / uint64(c.rate))
}
