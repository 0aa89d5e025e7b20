package synthetic

import (
	"context"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// emitted is one call of pace's emit: the sample, its place on the grid and
// the clock when it was handed over.
type emitted struct {
	n       uint64
	at, now time.Time
}

// runPace runs pace on a fake clock until sample last, calling during(n)
// from inside emit (a slow consumer), and returns what was emitted.
func runPace(t *testing.T, clk *clock.Fake, rate float64, last uint64, during func(n uint64)) []emitted {
	t.Helper()
	var got []emitted
	err := pace(context.Background(), clk, rate, func(n uint64, at time.Time) bool {
		got = append(got, emitted{n: n, at: at, now: clk.Now()})
		if during != nil {
			during(n)
		}
		return n < last
	})
	if err != nil {
		t.Fatalf("pace: %v", err)
	}
	return got
}

// checkGrid: samples 0…len-1 in order, each stamped start + n/rate and never
// handed over before that time.
func checkGrid(t *testing.T, got []emitted, rate float64) {
	t.Helper()
	period := time.Duration(float64(time.Second) / rate)
	for i, e := range got {
		if e.n != uint64(i) {
			t.Fatalf("emit %d carries sample %d", i, e.n)
		}
		if want := t0.Add(time.Duration(i) * period); !e.at.Equal(want) {
			t.Fatalf("sample %d stamped %v, want %v", i, e.at.Sub(t0), want.Sub(t0))
		}
		if e.now.Before(e.at) {
			t.Fatalf("sample %d handed over at %v, before its time %v", i, e.now.Sub(t0), e.at.Sub(t0))
		}
	}
}

// TestPaceOneSecond: 100 Hz for one second is 101 samples (0 s … 1 s), each
// handed over exactly at its time, and the sleeps add up to the second.
func TestPaceOneSecond(t *testing.T) {
	clk := clock.NewFake(t0)
	got := runPace(t, clk, 100, 100, nil)
	if len(got) != 101 {
		t.Fatalf("%d samples, want 101", len(got))
	}
	checkGrid(t, got, 100)
	for _, e := range got {
		if !e.now.Equal(e.at) {
			t.Fatalf("sample %d handed over at %v, due %v", e.n, e.now.Sub(t0), e.at.Sub(t0))
		}
	}
	if elapsed := clk.Now().Sub(t0); elapsed != time.Second {
		t.Fatalf("slept %v in all, want 1s", elapsed)
	}
}

// TestPaceCatchesUpAfterAStall: a consumer that holds sample 10 for 55 ms
// gets samples 11…15 (due during the stall) back to back, stamped on the
// grid, and the pace resumes on the same grid: no drift, nothing skipped.
func TestPaceCatchesUpAfterAStall(t *testing.T) {
	clk := clock.NewFake(t0)
	got := runPace(t, clk, 100, 30, func(n uint64) {
		if n == 10 {
			clk.Advance(55 * time.Millisecond)
		}
	})
	checkGrid(t, got, 100)
	if len(got) != 31 {
		t.Fatalf("%d samples, want 31", len(got))
	}
	stalled := t0.Add(155 * time.Millisecond)
	for _, e := range got[11:16] {
		if !e.now.Equal(stalled) {
			t.Fatalf("overdue sample %d handed over at %v, want at once (%v)", e.n, e.now.Sub(t0), stalled.Sub(t0))
		}
	}
	for _, e := range got[16:] {
		if !e.now.Equal(e.at) {
			t.Fatalf("sample %d after the catch-up handed over at %v, due %v", e.n, e.now.Sub(t0), e.at.Sub(t0))
		}
	}
}

// TestPaceHighRateSleepsInMilliseconds: at 4 kHz the samples still sit on
// the 250 µs grid, but pace never sleeps less than a millisecond; it hands
// over what fell due in between together.
func TestPaceHighRateSleepsInMilliseconds(t *testing.T) {
	clk := clock.NewFake(t0)
	got := runPace(t, clk, 4000, 400, nil)
	checkGrid(t, got, 4000)
	sleeps := clk.Sleeps()
	for _, d := range sleeps {
		if d < time.Millisecond {
			t.Fatalf("slept %v", d)
		}
	}
	if len(sleeps) > 100 {
		t.Fatalf("%d sleeps for 100 ms of samples", len(sleeps))
	}
}

// TestPaceStopsWithTheContext: once ctx ends, pace returns nil without
// handing over the next sample.
func TestPaceStopsWithTheContext(t *testing.T) {
	clk := clock.NewFake(t0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last uint64
	err := pace(ctx, clk, 100, func(n uint64, at time.Time) bool {
		last = n
		if n == 5 {
			cancel()
		}
		return true
	})
	if err != nil || last != 5 {
		t.Fatalf("pace = %v after sample %d, want nil after sample 5", err, last)
	}
}
