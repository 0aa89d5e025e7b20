package iio

import "math"

// lossMeter counts rows missing from a stream of kernel timestamps by
// comparing the rows seen with the time elapsed at the configured rate,
// instead of judging each gap on its own: a row that arrives late (a HID
// report delayed by the bus, an IRQ served late) leaves a long gap followed
// by a short one, and no row is missing.
//
// For every row it computes the deficit d = elapsed·rate − rows, which stays
// flat while rows arrive at the rate, rises for one row when that row is
// late, and steps up by k when k rows are missing. A row's deficit is judged
// only once the rows of the following horizon have arrived, as the minimum
// over the row and that horizon: a late row is followed by on-time ones
// (and a burst after a producer stall catches up), so only a deficit that
// persists for the whole horizon counts. The accepted level follows the
// deficit down at once and up by small steps (a clock a little slower than
// its nominal rate), so drift is not counted as loss; a step of half a row
// or more is counted as round(step) rows.
//
// The decision lags the data by the horizon, so a loss is reported up to
// one horizon after its gap. A lossMeter is owned by one goroutine.
type lossMeter struct {
	periodNs float64
	horizon  int64 // rows a deficit must persist before it counts

	started bool
	t0      int64 // kernel timestamp of the anchor row
	n       int64 // index of the last row since the anchor
	// win holds (index, deficit) pairs of the rows not yet judged plus the
	// horizon, with increasing deficits: win[0] is the minimum.
	win    []lossPoint
	level  float64
	haveLv bool
	held   int64 // decisions spent in the ambiguous band
}

type lossPoint struct {
	i int64
	d float64
}

// Thresholds in rows: a rise of the persistent deficit below creep is drift
// and absorbed, one of at least count is loss, one in between is held until
// it is either confirmed by a further rise or has persisted for a horizon.
const (
	lossCreep = 0.25
	lossCount = 0.5
)

// lossHorizon is how long (in kernel time) a deficit must persist before it
// is counted; it bounds the producer stall whose catch-up burst is still
// recognised as such, and how late a loss is reported.
const lossHorizonSeconds = 1.0

func newLossMeter(rate float64) *lossMeter {
	h := max(int64(16), int64(math.Ceil(rate*lossHorizonSeconds)))
	return &lossMeter{periodNs: 1e9 / rate, horizon: h}
}

// reset forgets the history: the next row is a new anchor. Used after a
// timestamp discontinuity, where elapsed time means nothing.
func (m *lossMeter) reset() {
	m.started = false
	m.win = m.win[:0]
	m.haveLv = false
	m.held = 0
}

// add records one row with kernel timestamp ts (ns) and returns how many
// rows were confirmed missing by this row's arrival.
func (m *lossMeter) add(ts int64) uint64 {
	if !m.started {
		m.started, m.t0, m.n = true, ts, 0
	} else {
		m.n++
	}
	d := float64(ts-m.t0)/m.periodNs - float64(m.n)
	for len(m.win) > 0 && m.win[len(m.win)-1].d >= d {
		m.win = m.win[:len(m.win)-1]
	}
	m.win = append(m.win, lossPoint{i: m.n, d: d})
	p := m.n - m.horizon // the row judged now
	if p < 0 {
		return 0
	}
	drop := 0
	for drop < len(m.win) && m.win[drop].i < p {
		drop++
	}
	if drop > 0 {
		m.win = append(m.win[:0], m.win[drop:]...)
	}
	lost := m.judge(m.win[0].d)
	if p > 1<<20 {
		m.rebase(p)
	}
	return lost
}

// judge compares the persistent deficit s of the row being judged with the
// accepted level and returns the rows it shows lost.
func (m *lossMeter) judge(s float64) uint64 {
	if !m.haveLv {
		m.level, m.haveLv = s, true
		return 0
	}
	step := s - m.level
	switch {
	case step < lossCreep:
		m.level, m.held = s, 0
	case step < lossCount:
		if m.held++; m.held > m.horizon {
			m.level, m.held = s, 0
		}
	default:
		m.level, m.held = s, 0
		return uint64(math.Floor(step + 0.5))
	}
	return 0
}

// rebase moves the anchor to row p so that elapsed time and row counts stay
// small numbers on a stream that runs for months.
func (m *lossMeter) rebase(p int64) {
	shiftRows := float64(p)
	shiftNs := int64(math.Round(shiftRows * m.periodNs))
	// Deficits are relative: d' = (ts - t0 - shiftNs)/P - (i - p) = d - (shiftNs/P - p).
	adj := float64(shiftNs)/m.periodNs - shiftRows
	m.t0 += shiftNs
	m.n -= p
	for k := range m.win {
		m.win[k].i -= p
		m.win[k].d -= adj
	}
	m.level -= adj
}
