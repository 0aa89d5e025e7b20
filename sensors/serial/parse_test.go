package serial

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/conf/conftest"
	"github.com/edge-agent/edge-agent/sensors"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseLine(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []float64
		wantErr bool
	}{
		{name: "comma", in: "1,-2.5,3e2\r\n", want: []float64{1, -2.5, 300}},
		{name: "comma space", in: "1, 2, 3", want: []float64{1, 2, 3}},
		{name: "tabs", in: "0.1\t0.2\t9.81\n", want: []float64{0.1, 0.2, 9.81}},
		{name: "spaces and trailing sep", in: "  4 5 6 ,\n", want: []float64{4, 5, 6}},
		{name: "single", in: "42", want: []float64{42}},
		{name: "header", in: "accX,accY,accZ", wantErr: true},
		{name: "half number", in: "1,2,3-", wantErr: true},
		{name: "nan", in: "1,NaN,3", wantErr: true},
		{name: "inf", in: "1,+Inf,3", wantErr: true},
		{name: "empty", in: "\r\n", wantErr: true},
		{name: "too many", in: strings.Repeat("1,", MaxAxes+1), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLine([]byte(tc.in), nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseLine(%q) err = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if err == nil && !slices.Equal(got, tc.want) {
				t.Fatalf("ParseLine(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	if _, err := ParseLine([]byte(""), nil); !errors.Is(err, errEmpty) {
		t.Fatalf("empty line: %v", err)
	}
}

func TestParseLineNoAlloc(t *testing.T) {
	line := []byte("123,-456,789\n")
	dst := make([]float64, 0, MaxAxes)
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseLine(line, dst) }); n != 0 {
		t.Fatalf("ParseLine allocates %v times per line", n)
	}
}

func TestRoundRate(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{99.96, 100}, {62.47, 62.5}, {1.0004, 1}, {998.7, 999}, {415.9, 416}, {0.5, 0.5}} {
		if got := roundRate(tc.in); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("roundRate(%g) = %g, want %g", tc.in, got, tc.want)
		}
	}
}

// TestRateEstimator feeds simulated arrival times: a board emitting at rate
// with a slightly wrong crystal (+0.3 %) and per-line jitter (±10 % of a
// period, at most ±2 ms), delivered by a
// USB adapter that holds data until its next flush (every `burst`) plus up
// to 2 ms of scheduling latency, and optionally a host that stalls for
// `stall` every 700 ms (lines then arrive in one late burst). The estimate
// must be within 2 %.
func TestRateEstimator(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		burst time.Duration
		stall time.Duration
	}{
		{name: "100 Hz host stalls 150ms", rate: 100, stall: 150 * time.Millisecond},
		{name: "1000 Hz 16ms bursts host stalls 150ms", rate: 1000, burst: 16 * time.Millisecond, stall: 150 * time.Millisecond},
		{name: "5 Hz host stalls 300ms", rate: 5, stall: 300 * time.Millisecond},
		{name: "1 Hz direct", rate: 1},
		{name: "10 Hz 16ms bursts", rate: 10, burst: 16 * time.Millisecond},
		{name: "62.5 Hz 16ms bursts", rate: 62.5, burst: 16 * time.Millisecond},
		{name: "100 Hz 1ms frames", rate: 100, burst: time.Millisecond},
		{name: "100 Hz 16ms bursts", rate: 100, burst: 16 * time.Millisecond},
		{name: "400 Hz 16ms bursts", rate: 400, burst: 16 * time.Millisecond},
		{name: "1000 Hz 1ms frames", rate: 1000, burst: time.Millisecond},
		{name: "1000 Hz 16ms bursts", rate: 1000, burst: 16 * time.Millisecond},
		{name: "1000 Hz 40ms bursts", rate: 1000, burst: 40 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.rate)))
			start := time.Unix(1000, 0)
			e := rateEstimator{window: defaultDetectWindow}
			true_ := tc.rate * 1.003
			for i := uint64(1); ; i++ {
				emitted := float64(i) / true_
				emitted += (rng.Float64() - 0.5) * min(0.2/true_, 0.004) // ±10 % of a period, at most ±2 ms
				at := start.Add(time.Duration(emitted * float64(time.Second)))
				if tc.burst > 0 {
					at = start.Add((at.Sub(start)/tc.burst + 1) * tc.burst)
				}
				at = at.Add(time.Duration(rng.Float64() * float64(2*time.Millisecond)))
				if tc.stall > 0 {
					// Stalled from k·700ms to k·700ms+stall: read at its end.
					off := at.Sub(start) % (700 * time.Millisecond)
					if off < tc.stall {
						at = at.Add(tc.stall - off)
					}
				}
				e.add(i, at)
				if r, ok := e.estimate(at); ok {
					if math.Abs(r-true_)/true_ > 0.02 {
						t.Fatalf("estimated %g Hz, true rate %g Hz", r, true_)
					}
					return
				}
				if i > 100_000 {
					t.Fatal("no estimate")
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		bad  []string
	}{
		{name: "minimal", cfg: Config{Port: "/dev/ttyACM0"}},
		{name: "no port", cfg: Config{}, bad: []string{"port"}},
		{name: "negative frequency", cfg: Config{Port: "p", Frequency: -1}, bad: []string{"frequency"}},
		{name: "duplicate and empty axes", cfg: Config{Port: "p", Axes: []string{"x", "", "x"}}, bad: []string{"axes[1]", "axes[2]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.SetDefaults()
			got, problems := conftest.Validate(&tc.cfg)
			if strings.Join(got, ",") != strings.Join(tc.bad, ",") {
				t.Fatalf("problems %v, want %v", problems, tc.bad)
			}
		})
	}
}

// TestFeedRateIgnoresNonReadings: blank lines and status lines between
// readings do not count as readings when timing the board.
func TestFeedRateIgnoresNonReadings(t *testing.T) {
	src, err := NewSource("b", Config{Port: "/dev/null"}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	st := src.newRunState()
	st.skipping = false
	out := make(chan sensors.Sample, 400)
	start := time.Unix(1000, 0)
	status := 0
	for i := range 300 { // 3 s at 100 Hz
		line := fmt.Sprintf("%d\t%d\t%d\r\n\r\n", i, i, i)
		if i%10 == 0 {
			line += "status: ok\r\n"
			status++
		}
		if !st.feed(context.Background(), out, []byte(line), start.Add(time.Duration(i)*10*time.Millisecond)) {
			t.Fatal("feed stopped")
		}
	}
	info := src.Info()
	if info.Rate != 100 || len(info.Axes) != 3 {
		t.Fatalf("rate %g axes %v", info.Rate, info.Axes)
	}
	if len(out) != 300 || src.Malformed() != uint64(status) {
		t.Fatalf("%d rows, %d malformed; want 300 and %d", len(out), src.Malformed(), status)
	}
}

// TestRateEstimatorBacklog: a device that buffered readings while the port
// was closed (a CDC gadget holds kilobytes, an FTDI some hundred bytes)
// delivers them in one burst at open, then the live stream follows. The
// burst takes line numbers but no time; the estimate must still be the
// board's rate.
func TestRateEstimatorBacklog(t *testing.T) {
	for _, backlog := range []int{0, 20, 320, 1000} {
		t.Run(fmt.Sprint(backlog, " lines"), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(backlog)))
			start := time.Unix(1000, 0)
			e := rateEstimator{window: defaultDetectWindow}
			const rate = 100.0
			for i := uint64(1); ; i++ {
				var at time.Time
				if int(i) <= backlog {
					// 64-byte packets, ~2 lines each, one per 1 ms frame.
					at = start.Add(time.Duration(i/2) * time.Millisecond)
				} else {
					emitted := float64(int(i)-backlog) / rate
					at = start.Add(time.Duration(emitted*float64(time.Second)) + time.Duration(rng.Float64()*float64(2*time.Millisecond)))
				}
				e.add(i, at)
				if r, ok := e.estimate(at); ok {
					if math.Abs(r-rate)/rate > 0.02 {
						t.Fatalf("estimated %g Hz, board runs at %g Hz", r, rate)
					}
					return
				}
				if i > 100_000 {
					t.Fatal("no estimate")
				}
			}
		})
	}
}
