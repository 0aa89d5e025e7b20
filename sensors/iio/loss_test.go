package iio

import (
	"math/rand/v2"
	"testing"
)

// stream builds kernel timestamps for n produced rows at rate (Hz, as the
// device really runs): late(i) delays row i (arrival jitter, ns), drop(i)
// leaves it out.
func stream(n int, rate float64, late func(i int) int64, drop func(i int) bool) []int64 {
	var ts []int64
	period := 1e9 / rate
	for i := range n {
		if drop != nil && drop(i) {
			continue
		}
		t := int64(5e9 + float64(i)*period)
		if late != nil {
			t += late(i)
		}
		ts = append(ts, t)
	}
	return ts
}

func countLost(rate float64, ts []int64) uint64 {
	m := newLossMeter(rate)
	var lost uint64
	for _, t := range ts {
		lost += m.add(t)
	}
	return lost
}

func TestLossMeter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const ms = int64(1e6)
	dropSet := func(idx ...int) func(int) bool {
		set := map[int]bool{}
		for _, i := range idx {
			set[i] = true
		}
		return func(i int) bool { return set[i] }
	}
	tests := []struct {
		name     string
		rate     float64 // configured rate
		devRate  float64 // rate the device really runs at (0: rate)
		n        int
		late     func(int) int64
		drop     func(int) bool
		wantLost uint64
	}{
		{name: "steady", rate: 100, n: 1000},
		// Defect 5 of issue 12: every tenth report 6 ms late at 100 Hz was
		// counted as 30 lost of 300.
		{name: "every tenth row 6 ms late at 100 Hz", rate: 100, n: 600,
			late: func(i int) int64 {
				if i%10 == 9 {
					return 6 * ms
				}
				return 0
			}},
		{name: "random lateness up to 0.9 period at 200 Hz", rate: 200, n: 1200,
			late: func(int) int64 { return rng.Int64N(4500) * 1000 }},
		{name: "producer stall of 300 ms then a catch-up burst", rate: 100, n: 1000,
			late: func(i int) int64 {
				if i >= 400 && i < 430 { // rows due during the stall arrive at its end
					return int64(430-i)*10*ms + int64(i-400)*20_000
				}
				return 0
			}},
		{name: "device 1 % slower than its nominal rate", rate: 100, devRate: 99, n: 3000},
		{name: "device 2 % faster than its nominal rate", rate: 100, devRate: 102, n: 3000},
		{name: "one burst of 10 dropped rows", rate: 100, n: 1000,
			drop: func(i int) bool { return i >= 300 && i < 310 }, wantLost: 10},
		{name: "single drops", rate: 200, n: 2000,
			drop: dropSet(100, 333, 334, 700, 1200), wantLost: 5},
		{name: "drops among jitter", rate: 62.5, n: 800,
			late: func(i int) int64 { return rng.Int64N(8) * ms },
			drop: dropSet(50, 51, 52, 53, 300, 500), wantLost: 6},
		{name: "drop after a late row", rate: 100, n: 600,
			late: func(i int) int64 {
				if i == 199 {
					return 7 * ms
				}
				return 0
			},
			drop: dropSet(200), wantLost: 1},
		{name: "kernel FIFO overflow: 2 s gone", rate: 400, n: 4000,
			drop: func(i int) bool { return i >= 1000 && i < 1800 }, wantLost: 800},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := tc.devRate
			if dev == 0 {
				dev = tc.rate
			}
			got := countLost(tc.rate, stream(tc.n, dev, tc.late, tc.drop))
			if got != tc.wantLost {
				t.Fatalf("lost %d rows, want %d", got, tc.wantLost)
			}
		})
	}
}

// TestLossMeterLongRun: the anchor is moved every 2^20 rows; counting goes
// on across it.
func TestLossMeterLongRun(t *testing.T) {
	m := newLossMeter(1000)
	var lost uint64
	const n = 3 << 20
	for i := range n {
		if i == 2<<20 || i == 2<<20+1 {
			continue // two dropped just after the second rebase
		}
		lost += m.add(int64(i) * 1_000_000)
	}
	if lost != 2 {
		t.Fatalf("lost %d, want 2", lost)
	}
}

// TestLossMeterReset: after a discontinuity the meter starts over, so a
// clock step is not read as rows lost.
func TestLossMeterReset(t *testing.T) {
	m := newLossMeter(100)
	var lost uint64
	for i := range 200 {
		lost += m.add(int64(i) * 10_000_000)
	}
	m.reset()
	for i := range 200 {
		lost += m.add(1e15 + int64(i)*10_000_000)
	}
	if lost != 0 {
		t.Fatalf("lost %d across a reset, want 0", lost)
	}
}
