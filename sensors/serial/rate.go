package serial

import (
	"math"
	"time"
)

// rateEstimator finds the line rate of a board from arrival times. USB
// serial adapters deliver lines in bursts (a bulk packet per 1 ms frame, or
// every 16 ms behind an FTDI latency timer), so consecutive gaps say little;
// a least-squares fit of arrival time against line number over a window of
// seconds averages the burst quantisation out (error ≈ burst/window). Not
// safe for concurrent use: one Run owns it.
type rateEstimator struct {
	window time.Duration
	first  time.Time
	n      float64
	sx     float64 // Σ index
	sy     float64 // Σ seconds since first
	sxx    float64
	sxy    float64
}

// add records that line number idx arrived at t.
func (e *rateEstimator) add(idx uint64, t time.Time) {
	if e.n == 0 {
		e.first = t
	}
	x, y := float64(idx), t.Sub(e.first).Seconds()
	e.n++
	e.sx += x
	e.sy += y
	e.sxx += x * x
	e.sxy += x * y
}

// estimate returns the rate once the window has passed and at least three
// lines arrived; ok is false before that or when the fit is degenerate.
func (e *rateEstimator) estimate(now time.Time) (float64, bool) {
	if e.n < 3 || now.Sub(e.first) < e.window {
		return 0, false
	}
	den := e.n*e.sxx - e.sx*e.sx
	if den <= 0 {
		return 0, false
	}
	slope := (e.n*e.sxy - e.sx*e.sy) / den // seconds per line
	if slope <= 0 {
		return 0, false
	}
	return roundRate(1 / slope), true
}

// roundRate keeps three significant digits (0.5 % at worst), so that a board
// at 99.96 Hz reports 100 and one at 62.47 Hz reports 62.5.
func roundRate(r float64) float64 {
	if r <= 0 {
		return r
	}
	p := math.Pow(10, 2-math.Floor(math.Log10(r)))
	return math.Round(r*p) / p
}
