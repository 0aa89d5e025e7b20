package iio

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/logx"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// Source is an IIO accelerometer. Info may be called at any time; Run is
// called by one goroutine at a time (the hub's), which owns the device while
// Run executes and releases it (files closed, buffer disabled) before Run
// returns.
type Source struct {
	name string
	cfg  Config
	env  sensors.Env
	log  *slog.Logger
	clk  clock.Clock

	mu   sync.Mutex
	info sensors.Info

	// presenceEvery overrides presenceCheck (tests).
	presenceEvery time.Duration

	lost    atomic.Uint64 // rows lost (missing from kernel timestamps, poll ticks skipped)
	badRead atomic.Uint64 // sysfs reads that did not parse
	jumps   atomic.Uint64 // buffered timestamp discontinuities
	lostLog logx.Every
}

// Option adjusts a Source; tests use them to inject a fake clock.
type Option func(*Source)

// WithClock paces sysfs polling with c instead of the real clock.
func WithClock(c clock.Clock) Option { return func(s *Source) { s.clk = c } }

// New returns the sensor; it touches no device until Run.
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	return NewSource(name, cfg, env)
}

// NewSource is New returning the concrete type (for tests and the sample CLI).
func NewSource(name string, cfg Config, env sensors.Env, opts ...Option) (*Source, error) {
	cfg.SetDefaults()
	if len(cfg.Frequencies) == 0 || cfg.Frequencies[0] <= 0 {
		return nil, fmt.Errorf("iio sensor %q: frequencies[0] must be > 0", name)
	}
	switch cfg.Mode {
	case "auto", "poll", "buffered":
	default:
		return nil, fmt.Errorf("iio sensor %q: unknown mode %q", name, cfg.Mode)
	}
	if env.SysRoot == "" {
		env.SysRoot = "/sys"
	}
	if env.DevRoot == "" {
		env.DevRoot = "/dev"
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		name: name, cfg: cfg, env: env, clk: clock.Real{},
		log:     log.With("sensor", name, "kind", "iio"),
		lostLog: logx.Every{Interval: 10 * time.Second},
		info: sensors.Info{
			Name: name, Kind: "iio", Class: sensors.Motion,
			Rate:            cfg.Frequencies[0],
			Frequencies:     append([]float64(nil), cfg.Frequencies...),
			Axes:            []string{"accX", "accY", "accZ"},
			Units:           "m/s2",
			MaxSampleLength: cfg.MaxSampleLength.D(),
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Info returns the sensor's description; Rate is the rate read back from the
// driver once Run has opened the device.
func (s *Source) Info() sensors.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.info
	i.Frequencies = append([]float64(nil), i.Frequencies...)
	i.Axes = append([]string(nil), i.Axes...)
	return i
}

// Lost counts rows lost since the source was created: in buffered mode rows
// missing from the kernel timestamps at the configured rate (FIFO overflow,
// reports the device never sent; not rows that merely arrived late), judged
// over a window and reported up to a second after the gap; in poll mode
// ticks skipped after a stall. Seq jumps by the same amount, so a recording
// can tell.
func (s *Source) Lost() uint64 { return s.lost.Load() }

// BadReads counts sysfs reads that did not parse as integers.
func (s *Source) BadReads() uint64 { return s.badRead.Load() }

func (s *Source) setRate(r float64) {
	s.mu.Lock()
	s.info.Rate = r
	s.mu.Unlock()
}

// Run opens the device, streams rows until ctx ends and releases the device.
// It returns nil when ctx ended, and an error when the device is missing or
// vanished (the hub restarts it with backoff, and the restart finds the
// device again by name). A configuration the device cannot serve (a mode it
// lacks, a rate it cannot run at, a named device without accelerometer
// channels, a scan format the decoder cannot read) is retry.Permanent, with
// the reason: retrying would not change the answer.
func (s *Source) Run(ctx context.Context, out chan<- sensors.Sample) error {
	// All of the run's sysfs and device I/O happens on one thread that the
	// process's own signals do not interrupt (see shieldSignals).
	defer shieldSignals()()
	dev, err := Find(s.env.SysRoot, s.cfg.Device)
	if err != nil {
		return fmt.Errorf("iio %s: %w", s.name, err)
	}
	cal, err := readCalibration(dev.Dir)
	if err != nil {
		return fmt.Errorf("iio %s: %w", s.name, err)
	}
	want := s.cfg.Frequencies[0]
	mode := s.cfg.Mode
	if mode == "auto" {
		mode = "poll"
		if dev.Buffered && want > MaxPollRate {
			mode = "buffered"
		}
	}
	switch {
	case mode == "buffered" && !dev.Buffered:
		return retry.Permanent(fmt.Errorf("iio %s: device %s has no buffered capture (no scan_elements)", s.name, dev.Name))
	case mode == "poll" && want > MaxPollRate:
		return retry.Permanent(fmt.Errorf("iio %s: %g Hz needs buffered capture, which device %s does not offer; use a rate <= %g Hz", s.name, want, dev.Name, MaxPollRate))
	}
	if mode == "buffered" {
		return s.runBuffered(ctx, out, dev, cal, want)
	}
	return s.runPoll(ctx, out, dev, cal, want)
}

// opened records the real rate and logs the (state-changing) open.
func (s *Source) opened(dev Device, mode string, want, got float64) {
	s.setRate(got)
	s.log.Info("iio device opened", "device", dev.Name, "dir", dev.Dir, "mode", mode, "rate_hz", got, "requested_hz", want)
}

// noteLost counts n lost rows and logs, rate-limited.
func (s *Source) noteLost(n uint64, why string) {
	s.lost.Add(n)
	if ok, held := s.lostLog.Allow(time.Now()); ok {
		s.log.Warn("iio rows lost", "rows", n, "why", why, "total_lost", s.lost.Load(), "similar_events_suppressed", held)
	}
}

// noteJumps counts timestamp discontinuities and logs, rate-limited.
func (s *Source) noteJumps(n uint64) {
	s.jumps.Add(n)
	if ok, held := s.lostLog.Allow(time.Now()); ok {
		s.log.Warn("iio timestamp discontinuity (clock stepped or bad data)", "total", s.jumps.Load(), "similar_events_suppressed", held)
	}
}

// Discontinuities counts buffered scans whose timestamp went backwards or
// jumped by more than a minute; they are delivered but not counted as loss.
func (s *Source) Discontinuities() uint64 { return s.jumps.Load() }

// send hands one sample to the hub, giving up when ctx ends.
func send(ctx context.Context, out chan<- sensors.Sample, smp sensors.Sample) bool {
	select {
	case out <- smp:
		return true
	case <-ctx.Done():
		return false
	}
}
