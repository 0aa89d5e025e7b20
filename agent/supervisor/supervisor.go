// Package supervisor keeps one link alive: Dial → Serve → Close in a loop,
// with jittered exponential backoff between sessions that resets only after a
// session stayed up for the policy's stable period. A permanent error (bad
// credentials) stops that link in state "failed"; nothing a link does can stop
// the daemon or another link.
//
// Concurrency: Run is called once and owns every goroutine it starts (the
// link's optional Worker); it waits for them before returning. Status may be
// called concurrently with Run.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport"
)

// State is a link's lifecycle state as shown in /status.
type State string

// Link states, shown in /status (the user-facing contract in docs/DESIGN.md).
const (
	Connecting State = "connecting"
	Up         State = "up"
	Backoff    State = "backoff"
	Stopped    State = "stopped"
	Failed     State = "failed"
)

// Options configures a Supervisor.
type Options struct {
	Name   string
	Kind   string
	Link   transport.Link
	Policy retry.Policy
	Clock  clock.Clock
	Logger *slog.Logger
	// Rand makes backoff jitter predictable in tests; nil is math/rand.
	Rand func() float64
}

// Status is a snapshot of one link.
type Status struct {
	Name       string
	Kind       string
	State      State
	Since      time.Time
	LastError  string
	Reconnects uint64 // sessions that ended and were retried
	Sessions   uint64 // sessions that came up
}

// Supervisor runs one link.
type Supervisor struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	status Status

	// Owned by Run's goroutine.
	upFor          time.Duration
	lastLogged     string
	lastLoggedTime time.Time
}

// New returns a supervisor in state stopped.
func New(opts Options) *Supervisor {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Policy = opts.Policy.WithDefaults()
	s := &Supervisor{opts: opts, log: opts.Logger.With("link", opts.Name, "kind", opts.Kind)}
	s.status = Status{Name: opts.Name, Kind: opts.Kind, State: Stopped, Since: opts.Clock.Now()}
	return s
}

// Status returns the current state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *Supervisor) set(st State, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.State != st {
		s.status.Since = s.opts.Clock.Now()
	}
	s.status.State = st
	if err != nil {
		s.status.LastError = err.Error()
	}
}

// Run keeps the link alive until ctx ends (state stopped) or the link fails
// permanently (state failed). It returns nil in both cases: a link's failure
// is reported through Status and the log, never to the caller.
func (s *Supervisor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if w, ok := s.opts.Link.(transport.Worker); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runWorker(ctx, w)
		}()
	}
	bo := retry.New(s.opts.Policy)
	bo.Rand = s.opts.Rand
	for {
		s.set(Connecting, nil)
		err := s.session(ctx)
		if ctx.Err() != nil {
			s.set(Stopped, nil)
			s.log.Info("link stopped")
			return nil
		}
		if retry.IsPermanent(err) {
			s.set(Failed, err)
			s.log.Error("link failed; it stays down until the config is fixed and the agent reloaded or restarted", "err", err)
			return nil
		}
		if err == nil {
			err = errors.New("session ended")
		}
		if s.upFor >= bo.Policy().StableAfter {
			bo.Reset() // the session was healthy: start over at Min
		}
		wait := bo.NextFor(err)
		s.mu.Lock()
		s.status.Reconnects++
		s.mu.Unlock()
		s.set(Backoff, err)
		s.logRetry(err, wait)
		if s.opts.Clock.Sleep(ctx, wait) != nil {
			s.set(Stopped, nil)
			s.log.Info("link stopped")
			return nil
		}
	}
}

// session runs one Dial → Serve → Close and records how long it stayed up in
// s.upFor (read by Run to decide whether to reset the backoff).
func (s *Supervisor) session(ctx context.Context) error {
	s.upFor = 0
	sess, err := s.opts.Link.Dial(ctx)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	upAt := s.opts.Clock.Now()
	s.mu.Lock()
	s.status.Sessions++
	s.mu.Unlock()
	s.set(Up, nil)
	s.log.Info("link up")
	err = sess.Serve(ctx)
	if cerr := sess.Close(); cerr != nil && err == nil && ctx.Err() == nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	s.upFor = s.opts.Clock.Now().Sub(upAt)
	return err
}

// logRetry logs a failed attempt, rate-limited: a new error text is logged at
// warn, the same text again only once a minute (debug otherwise), so a link
// that is down for hours does not fill the journal.
func (s *Supervisor) logRetry(err error, wait time.Duration) {
	now := s.opts.Clock.Now()
	msg := err.Error()
	if msg != s.lastLogged || now.Sub(s.lastLoggedTime) >= time.Minute {
		s.lastLogged, s.lastLoggedTime = msg, now
		s.log.Warn("link down; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		return
	}
	s.log.Debug("link down; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
}

// runWorker runs the link's background work, restarting it with backoff if it
// returns early, until ctx ends.
func (s *Supervisor) runWorker(ctx context.Context, w transport.Worker) {
	bo := retry.New(s.opts.Policy)
	for {
		err := w.Work(ctx)
		if ctx.Err() != nil {
			return
		}
		if retry.IsPermanent(err) {
			s.log.Error("link worker failed", "err", err)
			return
		}
		wait := bo.NextFor(err)
		s.log.Warn("link worker stopped; restarting", "err", err, "retry_in", wait.Round(time.Millisecond))
		if s.opts.Clock.Sleep(ctx, wait) != nil {
			return
		}
	}
}
