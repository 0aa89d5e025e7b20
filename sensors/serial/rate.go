package serial

import (
	"math"
	"time"
)

// maxRatePoints ends detection early on very fast boards: that many lines
// pin the rate down whatever the window.
const maxRatePoints = 1 << 16

// rateEstimator finds a board's line rate from arrival times.
//
// Arrivals are the emission times plus a delay that is never negative: USB
// adapters hold lines until their next flush (1 ms frames, or 16 ms behind an
// FTDI latency timer), and a loaded host reads them late in a burst. A
// least-squares fit is pulled by such delays (a 100 ms stall near the end of
// a 2 s window costs ~5 %). Because delays are one-sided, the board's clock is
// the line below all points: the estimator keeps the lower convex hull of
// (line number, arrival time) and takes the hull edge above the mean line
// number, which is the line under all points closest to them on average (the
// linear program of Moon, Skelly & Towsley's clock-skew estimator). Late
// points never move it; only the least-delayed ones do.
//
// One kind of input breaks the mean: a device that buffered readings while
// the port was closed (a CDC-ACM gadget holds kilobytes, an FTDI a few
// hundred bytes) sends them in one burst at open. That backlog takes line
// numbers but no time, so the mean line number can fall inside it, where
// the hull is flat (a rate of 30 kHz from a 100 Hz board). The edge is
// therefore taken above the line that arrived at mid-window instead: for a
// steady board that is the mean line number, and a backlog at the start
// cannot reach it.
//
// Not safe for concurrent use: one Run owns it. Memory is the hull, which
// stays small for a steady board (bursts collapse to their last line).
type rateEstimator struct {
	window time.Duration
	first  time.Time
	n      int
	sumX   float64
	hull   []point
	midX   float64 // line number of the first arrival at or after window/2
	midSet bool
}

type point struct{ x, y float64 } // line number, seconds since first arrival

// add records that line number idx arrived at t; idx must increase.
func (e *rateEstimator) add(idx uint64, t time.Time) {
	if e.n == 0 {
		e.first = t
	}
	p := point{float64(idx), t.Sub(e.first).Seconds()}
	e.n++
	e.sumX += p.x
	if !e.midSet && p.y >= e.window.Seconds()/2 {
		e.midX, e.midSet = p.x, true
	}
	for len(e.hull) >= 2 && cross(e.hull[len(e.hull)-2], e.hull[len(e.hull)-1], p) <= 0 {
		e.hull = e.hull[:len(e.hull)-1]
	}
	e.hull = append(e.hull, p)
}

// cross > 0 when o → a → b turns counter-clockwise.
func cross(o, a, b point) float64 {
	return (a.x-o.x)*(b.y-o.y) - (a.y-o.y)*(b.x-o.x)
}

// estimate returns the rate once the window has passed (or maxRatePoints
// lines arrived) and at least three lines arrived; ok is false before that or
// when the lines carry no usable timing (all in one burst).
func (e *rateEstimator) estimate(now time.Time) (float64, bool) {
	if e.n < 3 || (now.Sub(e.first) < e.window && e.n < maxRatePoints) {
		return 0, false
	}
	at := e.sumX / float64(e.n) // only when maxRatePoints ended the window early
	if e.midSet {
		at = e.midX
	}
	for i := 0; i+1 < len(e.hull); i++ {
		a, b := e.hull[i], e.hull[i+1]
		if b.x < at && i+2 < len(e.hull) {
			continue
		}
		slope := (b.y - a.y) / (b.x - a.x) // seconds per line
		if slope <= 0 {
			return 0, false
		}
		return roundRate(1 / slope), true
	}
	return 0, false
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
