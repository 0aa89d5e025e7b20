// Package rules turns the on-device models' results into actions on the
// links (`rules[]`): when a label holds a score for a time, start an RTM
// recording, upload the frame to Frame.io, tell the camera server's other
// devices. A rule subscribes to its model's stream through the hub like a
// link; what it does is logged, counted and shown in /status and /metrics.
//
// A rule fires once per episode: the label must reach min_score in every
// result for `for` (measured on the results' capture times), and the rule
// is armed again only by a result in which the label falls below
// min_score. Firings closer than min_interval are suppressed and counted,
// so a flickering model cannot flood a cloud. Each action runs with a
// timeout; a failed action is logged and counted, never retried (the next
// episode tries again) and never stops the rule.
package rules

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/camserver"
)

// What the links offer the rules. The agent hands New its links by name;
// an action's link must have the method its action needs.
type (
	// Recorder is the rtm link's recording control.
	Recorder interface {
		StartRecording() error
		StopRecording() error
	}
	// StillUploader is the frameio link's asset queue.
	StillUploader interface {
		UploadStill(name string, jpeg []byte) error
	}
	// Messenger is the camserver link's message sender.
	Messenger interface {
		SendMessage(ctx context.Context, m camserver.Message) error
	}
)

// Hub is the part of the sensor hub the rules use.
type Hub interface {
	Subscribe(name string, opts sensors.SubscribeOptions) (sensors.Subscription, error)
}

// Options are the engine's dependencies; the zero value is production.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// ActionTimeout bounds one action (a message waiting for the camera
	// server's session, a still taken from a sensor); 0 means 10s.
	ActionTimeout time.Duration
	// Backoff paces re-subscribing to a model stream the hub refused.
	Backoff retry.Policy
}

func (o Options) withDefaults() Options {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = 10 * time.Second
	}
	if o.Backoff.Min == 0 {
		o.Backoff = retry.Policy{Min: time.Second, Max: time.Minute, Jitter: 0.2}
	}
	return o
}

// Engine runs every rule of a config.
//
// Concurrency: Run is called once and owns one goroutine per rule, which
// it stops and waits for before it returns; Status may be called from any
// goroutine.
type Engine struct {
	hub   Hub
	links func(name string) any
	o     Options
	rules []*rule

	// recs holds, per link, the rtm.record actions whose recording runs:
	// the link records while any of them holds it, so one rule's time
	// running out does not cut the recording another rule asked for.
	// recMu also orders the start and stop commands of different rules.
	recMu sync.Mutex
	recs  map[string]map[*action]struct{}
}

// New builds the rules of cfgs on hub; links returns the running link of a
// name (nil when there is none), asked at every firing since a reload may
// rebuild a link. A rule whose action's link cannot carry the action out
// is failed with the reason (in the log and Status) and does not run; the
// others do. A link that is not running fails only the firings meanwhile.
func New(cfgs []config.Rule, hub Hub, links func(name string) any, o Options) *Engine {
	o = o.withDefaults()
	e := &Engine{hub: hub, links: links, o: o, recs: map[string]map[*action]struct{}{}}
	for _, c := range cfgs {
		r := &rule{cfg: c, e: e, log: o.Logger.With("rule", c.Name), state: StateWaiting, armed: true}
		for _, ac := range c.Then {
			a, err := e.newAction(ac)
			if err != nil {
				r.state, r.lastErr, r.failed = StateFailed, err.Error(), true
				r.log.Error("rule cannot run", "err", err)
				break
			}
			r.actions = append(r.actions, a)
		}
		e.rules = append(e.rules, r)
	}
	return e
}

// Run runs every rule until ctx ends, then stops any recording a rule
// started and is still running, and returns.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range e.rules {
		if !r.failed {
			wg.Go(func() { r.run(ctx) })
		}
	}
	wg.Wait()
}

// Status returns each rule's state and counts, in config order.
func (e *Engine) Status() []Status {
	out := make([]Status, 0, len(e.rules))
	for _, r := range e.rules {
		out = append(out, r.status())
	}
	return out
}

// Rule states (Status.State).
const (
	StateWaiting = "waiting"  // no result from the model yet
	StateArmed   = "armed"    // the label is below min_score; the next episode fires
	StateHolding = "holding"  // the label is above min_score, for less than `for`
	StateFired   = "fired"    // this episode fired (or was suppressed); waiting for it to end
	StateNoLabel = "no-label" // the model has no such label
	StateFailed  = "failed"   // an action's link cannot carry it out; the rule does not run
)

// Status is one rule in /status.
type Status struct {
	Name        string
	Model       string
	Label       string
	MinScore    float64
	For         time.Duration
	MinInterval time.Duration
	State       string
	// Results counts the model's results the rule read.
	Results uint64
	// Fired counts episodes that ran the actions; Suppressed episodes
	// that came within min_interval of the last firing.
	Fired, Suppressed uint64
	LastFired         time.Time // capture time of the result that fired
	LastScore         float64
	// LastError is why the rule cannot watch (the model's stream is
	// refused, the model has no such label); empty while it can.
	LastError string
	Actions   []ActionStatus
}

// ActionStatus is one action of a rule: its outcomes so far.
type ActionStatus struct {
	Do, Link   string
	OK, Failed uint64
	LastError  string
	LastAt     time.Time
}

// rule is one configured rule. run's goroutine owns the episode fields;
// mu guards what Status reads.
type rule struct {
	cfg     config.Rule
	e       *Engine
	log     *slog.Logger
	actions []*action
	failed  bool // set by New: the rule does not run

	// Owned by run's goroutine.
	since    time.Time // when the label reached min_score in this episode
	armed    bool
	lastFire time.Time
	warned   string // the labels a "no such label" was logged for

	mu         sync.Mutex
	state      string
	results    uint64
	fired      uint64
	suppressed uint64
	lastFired  time.Time
	lastScore  float64
	lastErr    string
}

// run watches the model's stream until ctx ends, subscribing again (with
// backoff) when the hub refuses or ends the subscription.
func (r *rule) run(ctx context.Context) {
	defer r.stopRecordings()
	bo := retry.New(r.e.o.Backoff)
	for ctx.Err() == nil {
		sub, err := r.e.hub.Subscribe(r.cfg.Model, sensors.SubscribeOptions{Queue: 8, Policy: sensors.DropOldest, Label: "rule:" + r.cfg.Name})
		if err != nil {
			r.setError(fmt.Sprintf("model stream %q: %v", r.cfg.Model, err))
			r.log.Warn("rule cannot watch its model", "model", r.cfg.Model, "err", err)
			if r.e.o.Clock.Sleep(ctx, bo.Next()) != nil {
				return
			}
			continue
		}
		started := r.e.o.Clock.Now()
		r.watch(ctx, sub)
		sub.Close()
		if r.e.o.Clock.Now().Sub(started) > time.Minute {
			bo.Reset()
		}
		if ctx.Err() == nil && r.e.o.Clock.Sleep(ctx, bo.Next()) != nil {
			return
		}
	}
}

// watch reads results until ctx ends or the subscription closes, and stops
// recordings whose time is up.
func (r *rule) watch(ctx context.Context, sub sensors.Subscription) {
	// One timer for the earliest recording stop, started anew only when
	// that time changes (a firing extends it), not at every result.
	timer := clock.NewTimer(r.e.o.Clock)
	defer timer.Stop()
	var armedFor time.Time
	for {
		if stop, due := r.nextStop(); !due {
			timer.Stop()
			armedFor = time.Time{}
		} else if !stop.Equal(armedFor) {
			timer.Reset(max(stop.Sub(r.e.o.Clock.Now()), 0))
			armedFor = stop
		}
		select {
		case <-ctx.Done():
			return
		case s, open := <-sub.C():
			if !open {
				return
			}
			r.observe(ctx, sub.Info(), s)
		case <-timer.C():
			armedFor = time.Time{}
			r.stopDue()
		}
	}
}

// observe advances the episode with one result and fires when it is due.
func (r *rule) observe(ctx context.Context, info sensors.Info, s sensors.Sample) {
	r.mu.Lock()
	r.results++
	r.mu.Unlock()
	idx := slices.Index(info.Axes, r.cfg.When.Label)
	if idx < 0 || idx >= len(s.Values) {
		r.noLabel(info.Axes)
		return
	}
	score := s.Values[idx]
	met := score >= r.cfg.When.MinScore
	r.mu.Lock()
	r.lastScore, r.lastErr = score, ""
	r.mu.Unlock()
	switch {
	case !met:
		r.since, r.armed = time.Time{}, true
		r.setState(StateArmed)
		return
	case !r.armed:
		return // this episode fired already
	case r.since.IsZero():
		r.since = s.Time
	}
	if s.Time.Sub(r.since) < r.cfg.When.For.D() {
		r.setState(StateHolding)
		return
	}
	r.armed = false
	r.setState(StateFired)
	if !r.lastFire.IsZero() && s.Time.Sub(r.lastFire) < r.cfg.MinInterval.D() {
		r.mu.Lock()
		r.suppressed++
		r.mu.Unlock()
		r.log.Info("rule suppressed: it fired less than min_interval ago", "label", r.cfg.When.Label,
			"score", round(score), "min_interval", r.cfg.MinInterval.D())
		return
	}
	r.lastFire = s.Time
	r.fire(ctx, firing{rule: r.cfg.Name, model: r.cfg.Model, label: r.cfg.When.Label, score: score, sample: s})
}

// fire runs every action of the rule, each under the action timeout.
func (r *rule) fire(ctx context.Context, f firing) {
	r.mu.Lock()
	r.fired++
	r.lastFired = f.sample.Time
	r.mu.Unlock()
	var done []string
	for _, a := range r.actions {
		actx, cancel := context.WithTimeout(ctx, r.e.o.ActionTimeout)
		err := a.run(actx, f)
		cancel()
		a.recordOutcome(err, r.e.o.Clock.Now())
		if err != nil {
			r.log.Warn("rule action failed", "action", a.cfg.Do, "link", a.cfg.Link, "err", err)
			continue
		}
		done = append(done, a.cfg.Do)
	}
	r.log.Info("rule fired", "model", f.model, "label", f.label, "score", round(f.score), "actions", done)
}

// noLabel reports, once per label set, a model without the rule's label.
func (r *rule) noLabel(labels []string) {
	msg := fmt.Sprintf("model %q has no label %q (labels: %v)", r.cfg.Model, r.cfg.When.Label, labels)
	r.mu.Lock()
	r.state, r.lastErr = StateNoLabel, msg
	r.mu.Unlock()
	if key := fmt.Sprint(labels); key != r.warned {
		r.warned = key
		r.log.Warn("rule cannot fire: " + msg)
	}
}

func (r *rule) setState(s string) {
	r.mu.Lock()
	r.state = s
	r.mu.Unlock()
}

func (r *rule) setError(msg string) {
	r.mu.Lock()
	r.lastErr = msg
	r.mu.Unlock()
}

func (r *rule) status() Status {
	r.mu.Lock()
	st := Status{Name: r.cfg.Name, Model: r.cfg.Model, Label: r.cfg.When.Label, MinScore: r.cfg.When.MinScore,
		For: r.cfg.When.For.D(), MinInterval: r.cfg.MinInterval.D(), State: r.state, Results: r.results, Fired: r.fired,
		Suppressed: r.suppressed, LastFired: r.lastFired, LastScore: r.lastScore, LastError: r.lastErr}
	r.mu.Unlock()
	for _, a := range r.actions {
		st.Actions = append(st.Actions, a.status())
	}
	return st
}

// round keeps a score readable in the log.
func round(f float64) float64 { return float64(int(f*1000+0.5)) / 1000 }
