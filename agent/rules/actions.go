package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/rtm"
)

// firing is what an action acts on: the result that fired the rule.
type firing struct {
	rule, model, label string
	score              float64
	sample             sensors.Sample // Input holds the classified frame of an image model
}

// action is one configured action bound to its link. run and until belong
// to the rule's goroutine; mu guards the counts Status reads.
type action struct {
	cfg config.Action
	run func(ctx context.Context, f firing) error

	until time.Time // rtm.record: when the recording is stopped (zero: none running)
	rec   Recorder  // rtm.record: the link that started it

	mu         sync.Mutex
	ok, failed uint64
	lastErr    string
	lastAt     time.Time
}

// newAction binds cfg to its link, which is looked up anew at every firing
// (a reload may have rebuilt it, or built one that failed at start). A
// running link must be able to carry the action out; one that is not
// running only fails the firings until it runs.
func (e *Engine) newAction(cfg config.Action) (*action, error) {
	a := &action{cfg: cfg}
	var check func(any) bool
	switch cfg.Do {
	case config.ActionRecord:
		check = func(l any) bool { _, ok := l.(Recorder); return ok }
		a.run = func(context.Context, firing) error {
			rec, err := bind[Recorder](e, cfg, "record")
			if err != nil {
				return err
			}
			return e.startRecording(a, rec, e.o.Clock.Now())
		}
	case config.ActionUploadStill:
		check = func(l any) bool { _, ok := l.(StillUploader); return ok }
		a.run = func(ctx context.Context, f firing) error {
			up, err := bind[StillUploader](e, cfg, "upload stills")
			if err != nil {
				return err
			}
			return e.uploadStill(ctx, up, cfg, f)
		}
	case config.ActionMessage:
		check = func(l any) bool { _, ok := l.(Messenger); return ok }
		a.run = func(ctx context.Context, f firing) error {
			m, err := bind[Messenger](e, cfg, "send messages")
			if err != nil {
				return err
			}
			return m.SendMessage(ctx, message(cfg, f))
		}
	default:
		return nil, fmt.Errorf("unknown action %q", cfg.Do)
	}
	if l := e.links(cfg.Link); l != nil && !check(l) {
		_, err := bindLink[struct{ notALink }](l, cfg, "do it")
		return nil, err
	}
	return a, nil
}

// notALink is no link's type: binding to it explains why a link is not
// usable.
type notALink struct{}

// bind returns the action's link as T.
func bind[T any](e *Engine, cfg config.Action, what string) (T, error) {
	return bindLink[T](e.links(cfg.Link), cfg, what)
}

func bindLink[T any](link any, cfg config.Action, what string) (T, error) {
	t, ok := link.(T)
	switch {
	case ok:
		return t, nil
	case link == nil:
		return t, fmt.Errorf("%s: link %q is not running", cfg.Do, cfg.Link)
	default:
		return t, fmt.Errorf("%s: link %q (%T) cannot %s", cfg.Do, cfg.Link, link, what)
	}
}

// startRecording starts a recording, or extends the one this action
// started, to run for cfg.For from now, and holds the link's recording for
// a (Engine.recs). A link without a session keeps the wish and starts
// recording when its next session is up (rtm.ErrNoSession), which counts
// as done. Called on a's rule's goroutine.
func (e *Engine) startRecording(a *action, rec Recorder, now time.Time) error {
	e.recMu.Lock()
	defer e.recMu.Unlock()
	err := rec.StartRecording()
	if err != nil && !errors.Is(err, rtm.ErrNoSession) {
		return err
	}
	a.rec, a.until = rec, now.Add(a.cfg.For.D())
	if e.recs[a.cfg.Link] == nil {
		e.recs[a.cfg.Link] = map[*action]struct{}{}
	}
	e.recs[a.cfg.Link][a] = struct{}{}
	return nil
}

// uploadStill hands the link the frame the model classified, or a fresh
// one from cfg.Sensor.
func (e *Engine) uploadStill(ctx context.Context, up StillUploader, cfg config.Action, f firing) error {
	jpeg := f.sample.Input
	if cfg.Sensor != "" {
		var err error
		if jpeg, err = e.takeStill(ctx, cfg.Sensor); err != nil {
			return err
		}
	}
	if len(jpeg) == 0 {
		return errors.New("frameio.upload_still: the model's input is not a still; give the action a sensor")
	}
	name := fmt.Sprintf("%s_%s_%s.jpg", f.rule, f.label, f.sample.Time.UTC().Format("20060102_150405.000"))
	return up.UploadStill(name, jpeg)
}

// takeStill subscribes to a still sensor for one frame.
func (e *Engine) takeStill(ctx context.Context, sensor string) ([]byte, error) {
	sub, err := e.hub.Subscribe(sensor, sensors.SubscribeOptions{Queue: 1, Policy: sensors.DropOldest, Label: "rule"})
	if err != nil {
		return nil, fmt.Errorf("take a still: %w", err)
	}
	defer sub.Close()
	if c := sub.Info().Class; c != sensors.Still {
		return nil, fmt.Errorf("take a still: sensor %q gives %s, not stills", sensor, c)
	}
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("take a still from %q: %w", sensor, ctx.Err())
	case s, open := <-sub.C():
		if !open {
			return nil, fmt.Errorf("take a still from %q: the sensor stopped", sensor)
		}
		return s.Data, nil
	}
}

// message is the camera-server message of a firing: the configured params
// with rule, model, label and score added where the config did not set
// them.
func message(cfg config.Action, f firing) camserver.Message {
	params := map[string]any{"rule": f.rule, "model": f.model, "label": f.label, "score": round(f.score),
		"time": f.sample.Time.UTC().Format(time.RFC3339Nano)}
	maps.Copy(params, cfg.Params)
	b, err := json.Marshal(params)
	if err != nil { // config validation marshalled the same params
		b = []byte("{}")
	}
	return camserver.Message{Msg: cfg.Msg, Target: cfg.Target, Params: b}
}

// recordOutcome counts one run of the action.
func (a *action) recordOutcome(err error, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastAt = at
	if err != nil {
		a.failed++
		a.lastErr = err.Error()
		return
	}
	a.ok++
}

func (a *action) status() ActionStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return ActionStatus{Do: a.cfg.Do, Link: a.cfg.Link, OK: a.ok, Failed: a.failed, LastError: a.lastErr, LastAt: a.lastAt}
}

// nextStop returns the earliest time a recording of the rule is due to
// stop, and whether one is running.
func (r *rule) nextStop() (time.Time, bool) {
	var next time.Time
	for _, a := range r.actions {
		if !a.until.IsZero() && (next.IsZero() || a.until.Before(next)) {
			next = a.until
		}
	}
	return next, !next.IsZero()
}

// stopDue stops the recordings whose time is up.
func (r *rule) stopDue() {
	now := r.e.o.Clock.Now()
	for _, a := range r.actions {
		if !a.until.IsZero() && !now.Before(a.until) {
			r.stopRecording(a)
		}
	}
}

// stopRecordings stops every recording the rule started (at shutdown).
func (r *rule) stopRecordings() {
	for _, a := range r.actions {
		if !a.until.IsZero() {
			r.stopRecording(a)
		}
	}
}

// stopRecording releases a's hold on its link's recording and stops the
// recording when no other action holds it.
func (r *rule) stopRecording(a *action) {
	e := r.e
	e.recMu.Lock()
	defer e.recMu.Unlock()
	a.until = time.Time{}
	holds := e.recs[a.cfg.Link]
	delete(holds, a)
	if len(holds) > 0 {
		r.log.Info("rule's recording time is up; the link keeps recording for another rule or action", "link", a.cfg.Link)
		return
	}
	delete(e.recs, a.cfg.Link)
	if err := a.rec.StopRecording(); err != nil && !errors.Is(err, rtm.ErrNoSession) {
		r.log.Warn("rule could not stop its recording", "link", a.cfg.Link, "err", err)
		return
	}
	r.log.Info("rule's recording time is up; recording stopped", "link", a.cfg.Link)
}
