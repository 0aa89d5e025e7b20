package rtm

import (
	"encoding/binary"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport"
)

func TestTerminationPolicy(t *testing.T) {
	opts := Options{TwoTimerWait: 5 * time.Second, SDPErrorWait: 5 * time.Minute}.withDefaults()
	tests := []struct {
		name      string
		causes    []string // applied in order; the last one is checked
		wantAfter time.Duration
		permanent bool
	}{
		{name: "conn error is plain backoff", causes: []string{CauseConnError}},
		{name: "unknown cause is plain backoff", causes: []string{"BRAND_NEW"}},
		{name: "service shutdown", causes: []string{CauseServiceShutdown}},
		{name: "no packet", causes: []string{CauseNoPacketReceived}},
		{name: "two timer waits 5s", causes: []string{CauseTwoTimer}, wantAfter: 5 * time.Second},
		{name: "two timer grows", causes: []string{CauseTwoTimer, CauseTwoTimer, CauseTwoTimer}, wantAfter: 20 * time.Second},
		{name: "two timer caps at 60s", causes: []string{CauseTwoTimer, CauseTwoTimer, CauseTwoTimer, CauseTwoTimer, CauseTwoTimer, CauseTwoTimer}, wantAfter: 60 * time.Second},
		{name: "sdp error waits minutes", causes: []string{CauseSDPError}, wantAfter: 5 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &Link{opts: opts, log: slog.New(slog.DiscardHandler), deps: transport.Deps{}.WithDefaults()}
			s := &session{l: l, log: l.log}
			var err error
			for _, c := range tc.causes {
				err = s.terminated(c)
			}
			var te *TerminatedError
			if !errorsAs(err, &te) || te.Cause != tc.causes[len(tc.causes)-1] {
				t.Fatalf("err = %v, want a TerminatedError", err)
			}
			after, ok := retry.After(err)
			if tc.wantAfter == 0 && ok {
				t.Errorf("unexpected RetryAfter %v", after)
			}
			if tc.wantAfter != 0 && after != tc.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", after, tc.wantAfter)
			}
			if retry.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v", retry.IsPermanent(err))
			}
		})
	}
}

func TestMuLaw(t *testing.T) {
	tests := []struct {
		in   int16
		want byte
	}{
		{0, 0xFF}, {-1, 0x7F}, {32767, 0x80}, {-32768, 0x00}, {1000, 0xCE}, {-1000, 0x4E},
	}
	for _, tc := range tests {
		if got := linearToMuLaw(tc.in); got != tc.want {
			t.Errorf("linearToMuLaw(%d) = %#02x, want %#02x", tc.in, got, tc.want)
		}
	}
	// Round trip error stays within the µ-law step size (about 1/16 of the value).
	for x := -32000; x <= 32000; x += 37 {
		y := int(muLawToLinear(linearToMuLaw(int16(x))))
		if d := math.Abs(float64(y - x)); d > math.Max(8, math.Abs(float64(x))/15) {
			t.Fatalf("round trip %d → %d", x, y)
		}
	}
}

// tone returns n s16le mono samples of a sine at f Hz.
func tone(f float64, rate, n int, amp float64) []byte {
	b := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		v := amp * math.Sin(2*math.Pi*f*float64(i)/float64(rate))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(int16(v)))
	}
	return b
}

func rms(x []int16) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

func TestResamplerResponse(t *testing.T) {
	tests := []struct {
		name    string
		rate    int
		freq    float64
		minGain float64 // output RMS / input RMS
		maxGain float64
	}{
		{name: "16k voice band passes", rate: 16000, freq: 1000, minGain: 0.97, maxGain: 1.03},
		{name: "16k 3.2 kHz passes", rate: 16000, freq: 3200, minGain: 0.9, maxGain: 1.05},
		{name: "16k 6 kHz (would alias to 2 kHz) is cut", rate: 16000, freq: 6000, maxGain: 0.003},
		{name: "48k voice band passes", rate: 48000, freq: 440, minGain: 0.97, maxGain: 1.03},
		{name: "48k 10 kHz is cut", rate: 48000, freq: 10000, maxGain: 0.003},
		{name: "44.1k voice band passes", rate: 44100, freq: 440, minGain: 0.95, maxGain: 1.05},
		{name: "8k passes through", rate: 8000, freq: 440, minGain: 0.99, maxGain: 1.01},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newResampler(tc.rate)
			in := tone(tc.freq, tc.rate, tc.rate, 16000) // 1 s
			var out []int16
			block := tc.rate / 50
			for off := 0; off < len(in); off += 2 * block {
				out = r.process(pcmToMono(nil, in[off:min(off+2*block, len(in))], 1), out)
			}
			if n := len(out); n < 7990 || n > 8010 {
				t.Fatalf("1 s gave %d samples at 8 kHz", n)
			}
			g := rms(out[200:]) / (16000 / math.Sqrt2)
			if g < tc.minGain || g > tc.maxGain {
				t.Errorf("gain %.4f, want [%v, %v]", g, tc.minGain, tc.maxGain)
			}
		})
	}
}

func TestPCMUPackets(t *testing.T) {
	e := newPCMUEncoder(16000, 2)
	var pkts int
	// 3 blocks of 15 ms stereo: 45 ms → two 20 ms packets, 5 ms pending.
	for i := 0; i < 3; i++ {
		if err := e.encode(make([]byte, 240*2*2), func(p []byte) error {
			if len(p) != 160 {
				t.Fatalf("packet of %d bytes", len(p))
			}
			pkts++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if pkts != 2 || len(e.pending) != 40 {
		t.Fatalf("packets %d pending %d, want 2 and 40", pkts, len(e.pending))
	}
}

func BenchmarkPCMUEncode20ms(b *testing.B) {
	e := newPCMUEncoder(16000, 1)
	blk := tone(440, 16000, 320, 16000)
	b.SetBytes(int64(len(blk)))
	for b.Loop() {
		_ = e.encode(blk, func([]byte) error { return nil })
	}
}
