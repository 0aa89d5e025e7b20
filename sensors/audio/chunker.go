package audio

import (
	"time"

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
}

func newChunker(rate, channels int) *chunker {
	fb := 2 * channels
	frames := int(int64(rate) * int64(BlockDuration) / int64(time.Second)) // int64: overflows a 32-bit int on armhf

	return &chunker{rate: rate, frameBytes: fb, blockBytes: frames * fb}
}

// push adds PCM that finished arriving at `at` and returns the complete
// blocks. Trailing partial frames never occur with s16 callbacks, but a
// partial block is kept for the next push.
func (c *chunker) push(pcm []byte, at time.Time) []sensors.Sample {
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
