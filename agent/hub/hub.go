// Package hub owns every configured sensor and fans its samples out to any
// number of subscribers. A V4L2 node or an ALSA hw: device can be opened by one
// process only, so the hub is the only place that runs a Source: the first
// Subscribe starts it, the last Close stops it and releases the device.
//
// Concurrency: all methods are safe for concurrent use. Each sensor has at
// most one worker goroutine, owned by its feed, which runs the source while
// the feed has subscribers; Close on the hub cancels every worker and waits
// for it. Delivery never blocks the pump: each subscriber has a
// bounded queue with its own drop policy and drop counter, so one slow link
// cannot stall another.
//
// A source that delivers at a steady rate while it works (a camera, an
// encoder) says how long it may stay silent by implementing Watched; the
// feed's watchdog ends a run that outlasts that and restarts it like a
// failed one, so a capture that stops after hours comes back by itself.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// State of a sensor as shown in /status.
const (
	StateIdle    = "idle"    // no subscribers, device closed
	StateRunning = "running" // source running
	StateError   = "error"   // source failed; retrying with backoff
)

// Options configures a Hub.
type Options struct {
	Logger *slog.Logger
	// Restart is the backoff for restarting a failed source while it still has
	// subscribers. Zero fields take retry.DefaultPolicy with Min 500ms, Max 30s.
	Restart retry.Policy
	Clock   clock.Clock
}

// Watched is implemented by sources whose silence means they are stuck: a
// camera or an encoder delivers at its frame rate while it works, so a run
// with no first sample (a USB camera that never starts streaming, an
// encoder that hangs at start-up) or none for a while after it (a wedged
// UVC camera, rpicam-vid that stops writing but does not exit) will not
// recover by waiting. The hub's watchdog ends such a run and restarts the
// source with the usual backoff, counting it in Stat.Stalls. Sources that
// are silent by nature (a motion sensor that reports on change, a serial
// board that pauses) do not implement it.
//
// StallTimeouts returns how long a run may take to its first sample and how
// long it may then go without one; zero turns that check off. The feed asks
// at the start of each run and again after the run's first sample, when a
// source that refines its rate on open knows the real one. It may be called
// concurrently with Run.
type Watched interface {
	StallTimeouts() (firstSample, stall time.Duration)
}

// Hub is the sensor multiplexer.
type Hub struct {
	log     *slog.Logger
	restart retry.Policy
	clk     clock.Clock

	mu     sync.Mutex
	feeds  map[string]*feed
	order  []string
	closed bool
}

// New returns an empty hub.
func New(opts Options) *Hub {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	p := opts.Restart
	if p.Min == 0 {
		p.Min = 500 * time.Millisecond
	}
	if p.Max == 0 {
		p.Max = 30 * time.Second
	}
	return &Hub{log: opts.Logger, restart: p.WithDefaults(), clk: opts.Clock, feeds: map[string]*feed{}}
}

// Add registers a source under its Info().Name. It does not open the device.
func (h *Hub) Add(src sensors.Source) error {
	info := src.Info()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return sensors.ErrHubClosed
	}
	if _, dup := h.feeds[info.Name]; dup {
		return fmt.Errorf("hub: sensor %q added twice", info.Name)
	}
	h.feeds[info.Name] = &feed{hub: h, src: src, name: info.Name, state: StateIdle, subs: map[*sub]struct{}{}}
	h.order = append(h.order, info.Name)
	return nil
}

// AddFailed registers a sensor whose driver could not be built, so it still
// appears in Stats (state error, with the reason) and Subscribe returns that
// reason instead of "unknown sensor".
func (h *Hub) AddFailed(info sensors.Info, err error) error {
	if err := h.Add(failedSource{info: info}); err != nil {
		return err
	}
	h.mu.Lock()
	f := h.feeds[info.Name]
	h.mu.Unlock()
	f.mu.Lock()
	f.buildErr, f.state, f.lastErr = err, StateError, err.Error()
	f.mu.Unlock()
	return nil
}

type failedSource struct{ info sensors.Info }

func (s failedSource) Info() sensors.Info { return s.info }
func (s failedSource) Run(ctx context.Context, out chan<- sensors.Sample) error {
	<-ctx.Done()
	return nil
}

// Sensors lists every sensor in the order they were added.
func (h *Hub) Sensors() []sensors.Info {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]sensors.Info, 0, len(h.order))
	for _, n := range h.order {
		out = append(out, h.feeds[n].src.Info())
	}
	return out
}

// Info returns one sensor's description.
func (h *Hub) Info(name string) (sensors.Info, bool) {
	h.mu.Lock()
	f, ok := h.feeds[name]
	h.mu.Unlock()
	if !ok {
		return sensors.Info{}, false
	}
	return f.src.Info(), true
}

// Subscribe opens a feed from sensor name. The first subscriber starts the
// source in the background; samples arrive on the subscription's channel.
func (h *Hub) Subscribe(name string, opts sensors.SubscribeOptions) (sensors.Subscription, error) {
	if opts.Queue <= 0 {
		opts.Queue = 16
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, sensors.ErrHubClosed
	}
	f, ok := h.feeds[name]
	if !ok {
		return nil, fmt.Errorf("subscribe %q: %w", name, sensors.ErrUnknownSensor)
	}
	f.mu.Lock()
	if f.buildErr != nil {
		defer f.mu.Unlock()
		return nil, fmt.Errorf("subscribe %q: %w", name, f.buildErr)
	}
	f.mu.Unlock()
	s := &sub{feed: f, opts: opts, ch: make(chan sensors.Sample, opts.Queue)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	first := len(f.subs) == 1
	f.mu.Unlock()
	if first {
		f.startLocked()
	}
	return s, nil
}

// Stat is one sensor's counters for /status and /metrics.
type Stat struct {
	Name        string
	Kind        string
	Class       string
	State       string
	Subscribers int
	Samples     uint64 // delivered by the source since the agent started
	Dropped     uint64 // lost to full subscriber queues (summed over subscribers, past and present)
	Restarts    uint64 // runs that failed or stalled and were started again (stalls included)
	Stalls      uint64 // runs the watchdog ended (see Watched)
	LastStall   Stall  // the most recent of them; zero when none
	LastError   string
	LastSample  time.Time
}

// Stall is one run the watchdog ended: when, and what it waited for.
type Stall struct {
	At     time.Time // on the hub's clock
	Reason string    // e.g. "no sample for 3s (after 1200 in this run)"
}

// Stats returns a snapshot of every sensor's counters.
func (h *Hub) Stats() []Stat {
	h.mu.Lock()
	names := append([]string(nil), h.order...)
	feeds := make([]*feed, len(names))
	for i, n := range names {
		feeds[i] = h.feeds[n]
	}
	h.mu.Unlock()
	out := make([]Stat, 0, len(feeds))
	for _, f := range feeds {
		info := f.src.Info()
		f.mu.Lock()
		st := Stat{
			Name: f.name, Kind: info.Kind, Class: info.Class.String(), State: f.state,
			Subscribers: len(f.subs), Samples: f.samples.Load(), Restarts: f.restarts,
			Stalls: f.stalls, LastStall: f.lastStall, LastError: f.lastErr, Dropped: f.droppedGone,
		}
		for s := range f.subs {
			st.Dropped += s.dropped.Load()
		}
		if ns := f.lastSample.Load(); ns != 0 {
			st.LastSample = time.Unix(0, ns)
		}
		f.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Close stops every running source and waits for them; subscribers' channels
// are closed. Subscribe fails afterwards.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	feeds := make([]*feed, 0, len(h.feeds))
	for _, f := range h.feeds {
		feeds = append(feeds, f)
	}
	h.mu.Unlock()
	for _, f := range feeds {
		f.mu.Lock()
		subs := make([]*sub, 0, len(f.subs))
		for s := range f.subs {
			subs = append(subs, s)
		}
		f.mu.Unlock()
		for _, s := range subs {
			s.Close()
		}
		f.waitStopped()
	}
}

// feed is one sensor with its subscribers. Whether the source should run
// is one wish (want: the feed has subscribers), and one worker goroutine at
// a time acts on it: it runs the pump while want holds, and when the pump
// ends it looks at want again. A burst of subscribe/close pairs (a peer
// flooding start/stop requests) therefore only flips want and cancels the
// current pump; it never queues one restart per pair, and the device is
// never opened twice.
type feed struct {
	hub  *Hub
	src  sensors.Source
	name string

	mu          sync.Mutex
	buildErr    error // the driver could not be built; never started
	subs        map[*sub]struct{}
	state       string
	lastErr     string
	restarts    uint64
	stalls      uint64
	lastStall   Stall
	droppedGone uint64        // drops of subscribers that already left
	want        bool          // the source should run (the feed has subscribers)
	cancel      func()        // stops the current pump; nil when none runs
	done        chan struct{} // closed when the current worker has returned; nil when none

	samples    atomic.Uint64
	lastSample atomic.Int64

	thumbs camjpeg.Cache // previews of this sensor's frames, shared by its subscribers (encode.go)
}

// startLocked records the wish to run and starts the worker if none is
// alive; h.mu is held. A worker that is still stopping the previous pump
// sees the wish and runs the source again, so no second worker is needed.
func (f *feed) startLocked() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.want = true
	f.state = StateRunning
	if f.done != nil {
		return
	}
	done := make(chan struct{})
	f.done = done
	go f.work(done)
}

// work runs the pump for as long as the feed wants it, then clears f.done
// (under f.mu, so startLocked either sees this worker alive or starts a new
// one after it decided to exit) and closes done.
func (f *feed) work(done chan struct{}) {
	defer close(done)
	for {
		f.mu.Lock()
		if !f.want {
			f.done, f.cancel = nil, nil
			f.mu.Unlock()
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		f.cancel = cancel
		f.mu.Unlock()
		f.pump(ctx)
		cancel()
	}
}

// stopIfIdle cancels the pump if the last subscriber left. Called with no locks.
func (f *feed) stopIfIdle() {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 && f.want {
		f.want = false
		if f.cancel != nil {
			f.cancel()
			f.cancel = nil
		}
		f.state = StateIdle
	}
}

// waitStopped waits for the worker (if any) to return.
func (f *feed) waitStopped() {
	f.mu.Lock()
	done := f.done
	f.mu.Unlock()
	if done != nil {
		<-done
	}
}

// pump runs the source, restarting it with backoff after failures, and
// distributes samples until ctx ends.
func (f *feed) pump(ctx context.Context) {
	bo := retry.New(f.hub.restart)
	log := f.hub.log.With("sensor", f.name)
	for {
		started := f.hub.clk.Now()
		err := f.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if f.hub.clk.Now().Sub(started) >= bo.Policy().StableAfter {
			bo.Reset()
		}
		if retry.IsPermanent(err) {
			// Retrying cannot help (driver not compiled in, bad device
			// config): report it and wait for the last subscriber to leave.
			f.mu.Lock()
			f.state, f.lastErr = StateError, err.Error()
			f.mu.Unlock()
			log.Error("sensor failed permanently", "err", err)
			<-ctx.Done()
			return
		}
		wait := bo.NextFor(err)
		if err == nil {
			err = fmt.Errorf("source returned without error before it was stopped")
		}
		var stall *stallError
		stalled := errors.As(err, &stall)
		f.mu.Lock()
		f.state, f.lastErr = StateError, err.Error()
		f.restarts++
		if stalled {
			f.stalls++
			f.lastStall = Stall{At: stall.at, Reason: stall.reason}
		}
		f.mu.Unlock()
		if stalled {
			log.Warn("sensor stalled; restarting", "reason", stall.reason, "retry_in", wait.Round(time.Millisecond))
		} else {
			log.Warn("sensor failed; restarting", "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		if f.hub.clk.Sleep(ctx, wait) != nil {
			return
		}
		f.mu.Lock()
		f.state = StateRunning
		f.mu.Unlock()
	}
}

// runOnce runs the source once and forwards its samples. When the watchdog
// finds the run silent it cancels the source, waits for Run to return, and
// returns a *stallError.
func (f *feed) runOnce(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan sensors.Sample, 64)
	errc := make(chan error, 1)
	go func() { errc <- f.src.Run(ctx, ch) }()
	wd := newWatchdog(f.src, f.hub.clk)
	defer wd.stop()
	var stalled error
	for {
		select {
		case s := <-ch:
			wd.sample() // first, so a subscriber holding s knows it was counted
			f.deliver(s)
		case <-wd.C():
			if err := wd.expired(); err != nil {
				stalled = err
				wd.stop()
				cancel()
			}
		case err := <-errc:
			// Drain what the source managed to send before it returned.
			for {
				select {
				case s := <-ch:
					f.deliver(s)
				default:
					if stalled != nil {
						return stalled // Run saw only the cancel; the stall is why
					}
					return err
				}
			}
		}
	}
}

// stallError ends a run the watchdog found silent.
type stallError struct {
	at     time.Time
	reason string
}

func (e *stallError) Error() string { return "stalled: " + e.reason }

// watchdog watches one run of a Watched source. One timer is armed at a
// time, for the earliest moment the run could count as stalled; a sample
// only records the time, and a timer that fires after samples came is armed
// again for the rest, so a 30 fps camera costs one timer per stall period
// rather than one per frame. The timers run on the hub's clock.
//
// Concurrency: used by runOnce's goroutine only. A source that is not
// Watched gets a watchdog whose C is nil and never fires.
type watchdog struct {
	src   Watched // nil: not watched
	clk   clock.Clock
	timer *clock.Timer

	first, stall time.Duration
	last         time.Time // when the newest sample arrived
	n            uint64    // samples in this run
}

func newWatchdog(src sensors.Source, clk clock.Clock) *watchdog {
	w := &watchdog{clk: clk, timer: clock.NewTimer(clk)}
	if ws, ok := src.(Watched); ok {
		w.src = ws
		w.first, w.stall = ws.StallTimeouts()
		if w.first > 0 {
			w.timer.Reset(w.first)
		}
	}
	return w
}

// C fires when the run may have stalled; expired says whether it has.
func (w *watchdog) C() <-chan time.Time { return w.timer.C() }

// sample records a delivered sample. The first one switches the timer from
// the first-sample timeout to the stall timeout, asked for again because
// the source may know its real rate by now.
func (w *watchdog) sample() {
	if w.src == nil {
		return
	}
	w.n++
	w.last = w.clk.Now()
	if w.n > 1 {
		return
	}
	_, w.stall = w.src.StallTimeouts()
	w.timer.Stop()
	if w.stall > 0 {
		w.timer.Reset(w.stall)
	}
}

// expired is called when C fired: it returns the stall, or arms the timer
// for the rest of the stall timeout counted from the newest sample.
func (w *watchdog) expired() error {
	now := w.clk.Now()
	if w.n == 0 {
		return &stallError{at: now, reason: fmt.Sprintf("no sample in the first %s", w.first)}
	}
	silent := now.Sub(w.last)
	if silent >= w.stall {
		return &stallError{at: now, reason: fmt.Sprintf("no sample for %s (after %d in this run)", w.stall, w.n)}
	}
	w.timer.Reset(w.stall - silent)
	return nil
}

// stop disarms the watchdog for the rest of the run: once it has fired, a
// late sample from the cancelled source must not arm it again.
func (w *watchdog) stop() {
	w.timer.Stop()
	w.src = nil
}

func (f *feed) deliver(s sensors.Sample) {
	f.samples.Add(1)
	f.lastSample.Store(s.Time.UnixNano())
	f.mu.Lock()
	defer f.mu.Unlock()
	for sb := range f.subs {
		sb.offer(s)
	}
}

// sub is one subscriber's bounded queue.
type sub struct {
	feed    *feed
	opts    sensors.SubscribeOptions
	ch      chan sensors.Sample
	dropped atomic.Uint64
	overrun atomic.Bool
	once    sync.Once
}

// offer queues s without blocking. Called with feed.mu held, which also
// serialises it against Close (so ch is never sent on after it is closed).
func (s *sub) offer(x sensors.Sample) {
	select {
	case s.ch <- x:
		return
	default:
	}
	s.dropped.Add(1)
	if s.opts.Policy == sensors.NoDrop {
		// The window's queue was sized to hold it all; losing data here means
		// the reader stalled. Keep what was queued, count the loss, flag it.
		s.overrun.Store(true)
		return
	}
	// Newest wins: drop the oldest queued sample and queue this one. The pump
	// is the only sender, so after one receive there is room.
	select {
	case <-s.ch:
	default:
	}
	select {
	case s.ch <- x:
	default:
	}
}

func (s *sub) C() <-chan sensors.Sample { return s.ch }
func (s *sub) Info() sensors.Info       { return s.feed.src.Info() }
func (s *sub) Dropped() uint64          { return s.dropped.Load() }
func (s *sub) Overrun() bool            { return s.overrun.Load() }

func (s *sub) RequestKeyframe() error {
	if k, ok := s.feed.src.(sensors.KeyframeRequester); ok {
		return k.RequestKeyframe()
	}
	return sensors.ErrNoKeyframeControl
}

func (s *sub) Close() {
	s.once.Do(func() {
		f := s.feed
		f.mu.Lock()
		delete(f.subs, s)
		f.droppedGone += s.dropped.Load()
		close(s.ch)
		f.mu.Unlock()
		f.stopIfIdle()
	})
}
