package audio

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// sine returns n frames of a 440 Hz tone starting at frame `from`.
func sine(rate, from, n int) []byte {
	b := make([]byte, 2*n)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(from+i)/float64(rate)))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

func TestChunker(t *testing.T) {
	tests := []struct {
		name    string
		rate    int
		periods []int // frames per callback
	}{
		{name: "16k exact periods", rate: 16000, periods: []int{320, 320, 320, 320}},
		{name: "16k odd periods", rate: 16000, periods: []int{100, 333, 7, 500, 1000, 60}},
		{name: "48k big periods", rate: 48000, periods: []int{4800, 4800, 2400}},
		{name: "11025 fractional block", rate: 11025, periods: []int{1000, 1000, 1000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newChunker(tc.rate, 1)
			blockFrames := tc.rate / 50
			at := time.Unix(1000, 0)
			var all []byte
			var got []byte
			total := 0
			var lastTime time.Time
			var seq uint64
			for _, p := range tc.periods {
				pcm := sine(tc.rate, total, p)
				all = append(all, pcm...)
				total += p
				at = at.Add(time.Duration(p) * time.Second / time.Duration(tc.rate))
				for _, s := range c.push(pcm, at) {
					if len(s.Data) != 2*blockFrames || s.Seq != seq {
						t.Fatalf("block %d: %d bytes seq %d", seq, len(s.Data), s.Seq)
					}
					if want := time.Duration(blockFrames) * time.Second / time.Duration(tc.rate); s.Duration != want {
						t.Fatalf("duration %v, want %v", s.Duration, want)
					}
					if seq > 0 {
						if d := s.Time.Sub(lastTime) - s.Duration; d < -time.Microsecond || d > time.Microsecond {
							t.Fatalf("block %d starts %v off the previous end", seq, d)
						}
					}
					lastTime = s.Time
					seq++
					got = append(got, s.Data...)
				}
			}
			if want := total / blockFrames; int(seq) != want {
				t.Fatalf("%d blocks, want %d", seq, want)
			}
			if string(got) != string(all[:len(got)]) {
				t.Fatal("PCM changed on the way through the chunker")
			}
		})
	}
}

// TestChunkerReanchor: after a gap (dropped callbacks) block times follow the
// arrival clock again instead of the sample count.
func TestChunkerReanchor(t *testing.T) {
	c := newChunker(16000, 1)
	at := time.Unix(1000, 0)
	first := c.push(sine(16000, 0, 320), at)
	at = at.Add(time.Second) // 980 ms of audio lost
	second := c.push(sine(16000, 320, 320), at)
	if len(first) != 1 || len(second) != 1 {
		t.Fatal("want one block each")
	}
	if d := second[0].Time.Sub(first[0].Time); d != time.Second {
		t.Fatalf("after the gap blocks are %v apart, want 1s", d)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		bad  int
	}{
		{name: "defaults", cfg: Config{}},
		{name: "rate too low", cfg: Config{SampleRate: 4000}, bad: 1},
		{name: "rate too high", cfg: Config{SampleRate: 384000}, bad: 1},
		{name: "negative length", cfg: Config{MaxSampleLength: conf.Duration(-time.Second)}, bad: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.SetDefaults()
			v := conf.NewValidator()
			tc.cfg.Validate(v)
			if n := len(v.Problems()); n != tc.bad {
				t.Fatalf("%d problems, want %d: %v", n, tc.bad, v.Problems())
			}
		})
	}
}
