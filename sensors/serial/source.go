package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/logx"
	"github.com/edge-agent/edge-agent/sensors"
)

const (
	// defaultDetectWindow is how long line timing is observed before the
	// rate is reported: long enough that 16 ms USB bursts cost < 1 %.
	defaultDetectWindow = 2 * time.Second
	// axesStreak is how many consecutive lines must agree on the column
	// count before it is taken as the board's axis count.
	axesStreak = 3
	// maxLag is how far a row's smoothed time may trail its arrival before
	// it is re-anchored to the arrival time.
	maxLag = 100 * time.Millisecond
)

// Source is a line-oriented serial sensor. Info may be called at any time;
// Run is called by one goroutine at a time, owns the port while it runs and
// closes it before returning.
type Source struct {
	name    string
	cfg     Config
	sysRoot string
	log     *slog.Logger
	window  time.Duration

	mu   sync.Mutex
	info sensors.Info

	malformed atomic.Uint64
	rows      atomic.Uint64
	badLog    logx.Every
}

// Option adjusts a Source.
type Option func(*Source)

// WithDetectWindow sets how long line timing is observed before the rate is
// reported (default 2 s).
func WithDetectWindow(d time.Duration) Option { return func(s *Source) { s.window = d } }

// New returns the sensor; it does not open the port until Run.
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	return NewSource(name, cfg, env)
}

// NewSource is New returning the concrete type.
func NewSource(name string, cfg Config, env sensors.Env, opts ...Option) (*Source, error) {
	cfg.SetDefaults()
	if cfg.Port == "" {
		return nil, fmt.Errorf("serial sensor %q: port is required", name)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sysRoot := env.SysRoot
	if sysRoot == "" {
		sysRoot = "/sys"
	}
	s := &Source{
		name: name, cfg: cfg, sysRoot: sysRoot, window: defaultDetectWindow,
		log:    log.With("sensor", name, "kind", "serial"),
		badLog: logx.Every{Interval: 10 * time.Second},
		info: sensors.Info{
			Name: name, Kind: "serial", Class: sensors.Motion,
			Rate: cfg.Frequency, Units: cfg.Units,
			Axes:            slices.Clone(cfg.Axes),
			MaxSampleLength: cfg.MaxSampleLength.D(),
		},
	}
	if cfg.Frequency > 0 {
		s.info.Frequencies = []float64{cfg.Frequency}
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Info describes the sensor. With auto-detection, Rate and Axes are known
// once a Run has seen enough lines (they are kept across restarts); until
// then Rate is 0 and Axes empty. Configure frequency and axes for links that
// must announce them before the first capture.
func (s *Source) Info() sensors.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.info
	i.Frequencies = slices.Clone(i.Frequencies)
	i.Axes = slices.Clone(i.Axes)
	return i
}

// Malformed counts lines skipped because they did not parse or had the
// wrong number of values.
func (s *Source) Malformed() uint64 { return s.malformed.Load() }

// Rows counts rows delivered since the source was created.
func (s *Source) Rows() uint64 { return s.rows.Load() }

// Run opens the port and sends one row per line until ctx ends (nil) or the
// port fails (an error: the board was unplugged or reset). A port that can
// never work (the path is not a tty, the line settings are refused) is a
// retry.Permanent error; a missing device node is not, the board may be
// plugged back. The port is opened raw (see openPort for the echo) without
// touching DTR/RTS (a pty has no modem lines) and without a read timeout:
// cancellation closes the port from a context.AfterFunc, which unblocks the
// pending Read at once, and Run waits for that close.
func (s *Source) Run(ctx context.Context, out chan<- sensors.Sample) error {
	port, err := openPort(s.cfg.Port, s.cfg.Baud, s.sysRoot)
	if err != nil {
		return fmt.Errorf("serial %s: open %s: %w", s.name, s.cfg.Port, err)
	}
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { _ = port.Close(); close(closed) })
	defer func() {
		if stop() {
			_ = port.Close()
		} else {
			<-closed
		}
	}()
	s.log.Info("serial port opened", "port", s.cfg.Port, "baud", s.cfg.Baud)

	st := s.newRunState()
	buf := make([]byte, 4096)
	for {
		n, rerr := port.Read(buf)
		if n > 0 {
			if !st.feed(ctx, out, buf[:n], time.Now()) {
				return nil
			}
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serial %s: read %s (unplugged?): %w", s.name, s.cfg.Port, rerr)
		}
	}
}

// runState is the per-Run line assembler, axis detector and rate estimator.
type runState struct {
	s *Source

	line     []byte
	skipping bool // discarding up to the next newline
	overlong bool // the discarded part was an over-long line

	readings uint64 // well-formed lines, for rate detection
	seq      uint64
	nAxes    int
	cand     int              // column count being confirmed
	pending  []sensors.Sample // rows waiting for the axis count

	period  time.Duration // 0 until known
	est     rateEstimator
	prevT   time.Time
	scratch []float64
}

func (s *Source) newRunState() *runState {
	st := &runState{s: s, line: make([]byte, 0, MaxLine), skipping: true, nAxes: len(s.cfg.Axes),
		est: rateEstimator{window: s.window}, scratch: make([]float64, 0, MaxAxes)}
	if s.cfg.Frequency > 0 {
		st.period = time.Duration(float64(time.Second) / s.cfg.Frequency)
	}
	return st
}

// feed splits a chunk that arrived at `at` into lines and handles them. It
// returns false when ctx ended while sending.
func (st *runState) feed(ctx context.Context, out chan<- sensors.Sample, b []byte, at time.Time) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i]
		}
		switch {
		case st.skipping:
		case len(st.line)+len(seg) > MaxLine:
			st.line = st.line[:0]
			st.skipping, st.overlong = true, true
		default:
			st.line = append(st.line, seg...)
		}
		if i < 0 {
			return true
		}
		b = b[i+1:]
		if st.skipping {
			if st.overlong {
				st.bad(errTooLong, nil, at)
			}
			st.skipping, st.overlong = false, false
			continue
		}
		ok := st.handle(ctx, out, st.line, at)
		st.line = st.line[:0]
		if !ok {
			return false
		}
	}
	return true
}

// handle parses one complete line.
func (st *runState) handle(ctx context.Context, out chan<- sensors.Sample, line []byte, at time.Time) bool {
	vals, err := ParseLine(line, st.scratch)
	if err != nil {
		if errors.Is(err, errEmpty) {
			return true // blank lines are harmless
		}
		st.bad(err, line, at)
		return true
	}
	if st.nAxes != 0 && len(vals) != st.nAxes {
		st.bad(fmt.Errorf("%w: got %d, want %d", errBadCount, len(vals), st.nAxes), line, at)
		return true
	}
	// Only readings time the board: blank lines, headers and status lines
	// printed between them would inflate the rate.
	st.readings++
	if st.period == 0 {
		st.est.add(st.readings, at)
		if r, ok := st.est.estimate(at); ok {
			st.period = time.Duration(float64(time.Second) / r)
			st.s.detectedRate(r)
		}
	}
	if st.nAxes == 0 {
		return st.confirmAxes(ctx, out, vals, at)
	}
	return st.emit(ctx, out, slices.Clone(vals), at)
}

// confirmAxes waits for axesStreak lines with the same column count before
// fixing the axis count, holding those rows back (at most axesStreak).
func (st *runState) confirmAxes(ctx context.Context, out chan<- sensors.Sample, vals []float64, at time.Time) bool {
	if len(vals) != st.cand {
		for range st.pending {
			st.bad(fmt.Errorf("%w: column count changed from %d to %d while detecting", errBadCount, st.cand, len(vals)), nil, at)
		}
		st.pending = st.pending[:0]
		st.cand = len(vals)
	}
	st.pending = append(st.pending, sensors.Sample{Values: slices.Clone(vals), Time: at})
	if len(st.pending) < axesStreak {
		return true
	}
	st.nAxes = st.cand
	st.s.detectedAxes(st.nAxes)
	for _, p := range st.pending {
		if !st.emit(ctx, out, p.Values, p.Time) {
			return false
		}
	}
	st.pending = nil
	return true
}

// emit stamps and sends one row. Rows of a burst share an arrival time;
// once the period is known they are spread back onto an even grid (never
// later than their arrival, never more than maxLag behind it).
func (st *runState) emit(ctx context.Context, out chan<- sensors.Sample, vals []float64, at time.Time) bool {
	t := at
	if st.period > 0 && !st.prevT.IsZero() {
		if p := st.prevT.Add(st.period); p.Before(at) && at.Sub(p) < maxLag {
			t = p
		}
	}
	st.prevT = t
	smp := sensors.Sample{Class: sensors.Motion, Time: t, Seq: st.seq, Values: vals}
	st.seq++
	select {
	case out <- smp:
		st.s.rows.Add(1)
		return true
	case <-ctx.Done():
		return false
	}
}

// bad counts a malformed line and logs it, rate-limited (the line itself is
// quoted, truncated: it is sensor output, not a secret).
func (st *runState) bad(err error, line []byte, at time.Time) {
	st.s.malformed.Add(1)
	if ok, held := st.s.badLog.Allow(at); ok {
		if len(line) > 64 {
			line = line[:64]
		}
		st.s.log.Warn("serial line skipped", "err", err, "line", strconv.Quote(string(line)), "total_malformed", st.s.malformed.Load(), "similar_events_suppressed", held)
	}
}

func (s *Source) detectedRate(r float64) {
	s.mu.Lock()
	changed := s.info.Rate != r
	s.info.Rate, s.info.Frequencies = r, []float64{r}
	s.mu.Unlock()
	if changed {
		s.log.Info("serial rate detected", "rate_hz", r)
	}
}

func (s *Source) detectedAxes(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.info.Axes) == n {
		return
	}
	s.info.Axes = make([]string, n)
	for i := range n {
		s.info.Axes[i] = "axis" + strconv.Itoa(i)
	}
	s.log.Info("serial axes detected", "axes", n)
}
