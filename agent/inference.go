package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/infer"
	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
)

// The on-device models (`inference[]`, agent/infer). Each is a stream on
// the hub under its name, added after the sensors and before the links are
// built, so a link or a rule subscribes to a model's results like to a
// sensor; an edgeimpulse link named by an entry reports that model to
// Studio (SetMonitor in buildLink). While the agent runs it holds one
// subscription of its own to every stream, so a configured model runs
// (and its figures show in /status and /metrics) whether or not anything
// else listens, and a goroutine per downloaded model keeps it current.
// A reload replaces the models whose entry (or the link block a Studio
// model downloads through) changed, and only those (planModels).

// inferenceRunner is one configured model.
type inferenceRunner struct {
	cfg      config.Inference
	key      modelKey
	stream   *infer.Stream // nil when it could not be built
	buildErr error
	stop     func() // stops what startModel started and waits; nil when not started
}

// modelKey is what a model is built from, compared by a reload.
type modelKey struct {
	In       config.Inference
	Studio   *edgeimpulse.Config // the block a Studio model downloads through
	StateDir string
}

func modelKeyOf(cfg *config.Config, in config.Inference) modelKey {
	k := modelKey{In: in, StateDir: cfg.StateDir}
	if in.Model == "" {
		k.Studio = studioBlock(cfg, in.EdgeImpulse)
	}
	return k
}

// studioBlock is the edgeimpulse block of the link named link, nil when
// there is none.
func studioBlock(cfg *config.Config, link string) *edgeimpulse.Config {
	for _, l := range cfg.Links {
		if b, ok := l.Block.(*edgeimpulse.Config); ok && l.Name == link {
			return b
		}
	}
	return nil
}

// buildInference builds every model of cfg and adds its stream to the hub.
func (a *Agent) buildInference(cfg *config.Config) error {
	for _, in := range cfg.Inference {
		r, err := a.buildModel(cfg, in)
		if err != nil {
			return err
		}
		a.inference = append(a.inference, r)
	}
	return nil
}

// buildModel builds model in of cfg and adds its stream to the hub. A
// model that cannot be built (its link's block is not there) is in the
// hub as failed, with the reason; only a hub refusing the name is an
// error.
func (a *Agent) buildModel(cfg *config.Config, in config.Inference) (*inferenceRunner, error) {
	r := &inferenceRunner{cfg: in, key: modelKeyOf(cfg, in)}
	st, err := a.newStream(cfg, in)
	if err != nil {
		r.buildErr = err
		a.log.Error("model cannot be built; it stays failed", "inference", in.Name, "err", err)
		if err := a.hub.AddFailed(sensors.Info{Name: in.Name, Kind: "eim", Class: sensors.Inference}, err); err != nil {
			return nil, fmt.Errorf("inference %s: %w", in.Name, err)
		}
		return r, nil
	}
	r.stream = st
	if err := a.hub.Add(st); err != nil {
		return nil, fmt.Errorf("inference %s: %w", in.Name, err)
	}
	return r, nil
}

func (a *Agent) newStream(cfg *config.Config, in config.Inference) (*infer.Stream, error) {
	log := a.log.With("inference", in.Name)
	mo := infer.ModelsOptions{Path: in.Model, Target: in.Target, Variant: in.Variant,
		Dir: filepath.Join(cfg.StateDir, "models", in.Name), Clock: a.opts.Clock, Logger: log}
	if in.Model == "" {
		block := studioBlock(cfg, in.EdgeImpulse)
		if block == nil {
			return nil, fmt.Errorf("link %q has no edgeimpulse block", in.EdgeImpulse)
		}
		studio, err := edgeimpulse.NewStudio(*block, edgeimpulse.StudioOptions{Logger: log, Secrets: a.opts.Secrets, Name: in.EdgeImpulse})
		if err != nil {
			return nil, err
		}
		mo.Studio = studio
	}
	models, err := infer.NewModels(mo)
	if err != nil {
		return nil, err
	}
	return infer.NewStream(a.hub, models, infer.StreamOptions{Name: in.Name, Sensor: in.Sensor,
		Interval: in.Interval.D(), Timeout: in.Timeout.D(), Process: infer.ProcessOptions{StartTimeout: in.StartTimeout.D()},
		Clock: a.opts.Clock, Logger: log}), nil
}

// attachMonitor hands link the model an `inference[]` entry names it for.
func (a *Agent) attachMonitor(name string, link transport.Link) {
	m, ok := link.(interface{ SetMonitor(edgeimpulse.Monitor) })
	if !ok {
		return
	}
	for _, r := range a.inference {
		if r.cfg.EdgeImpulse == name && r.stream != nil {
			m.SetMonitor(r.stream)
		}
	}
}

// startModel starts the agent's own subscription to r's stream and its
// model source's updates, until ctx ends or stopModel.
func (a *Agent) startModel(ctx context.Context, r *inferenceRunner) {
	if r.stream == nil {
		return
	}
	sub, err := a.hub.Subscribe(r.cfg.Name, sensors.SubscribeOptions{Queue: 4, Policy: sensors.DropOldest, Label: "agent"})
	if err != nil {
		a.log.Error("model not started", "inference", r.cfg.Name, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case _, open := <-sub.C():
				if !open {
					return
				}
			}
		}
	})
	models := r.stream.Models()
	every := r.cfg.CheckEvery.D()
	wg.Go(func() { models.Run(ctx, every) })
	r.stop = func() {
		cancel()
		wg.Wait()
	}
}

// stopModel stops what startModel started and waits for it.
func (a *Agent) stopModel(r *inferenceRunner) {
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
}

// runInference starts every model (startModel); the returned function
// stops the models running then, a reload's replacements included.
func (a *Agent) runInference(ctx context.Context) (stop func()) {
	for _, r := range a.inference {
		a.startModel(ctx, r)
	}
	return func() {
		for _, r := range a.modelRunners() {
			a.stopModel(r)
		}
	}
}

// modelRunners returns the current models.
func (a *Agent) modelRunners() []*inferenceRunner {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.inference)
}

// inferenceStatus is the part of /status of the models in runners.
func (a *Agent) inferenceStatus(runners []*inferenceRunner) []status.InferenceStatus {
	var out []status.InferenceStatus
	for _, r := range runners {
		if r.stream == nil {
			out = append(out, status.InferenceStatus{Name: r.cfg.Name, Sensor: r.cfg.Sensor, State: infer.StateFailed,
				Counts: map[string]uint64{}, Labels: []status.LabelStatus{}, LastError: errText(r.buildErr)})
			continue
		}
		st := r.stream.Status()
		is := status.InferenceStatus{Name: st.Name, Sensor: st.Sensor, State: st.State, Source: st.Source,
			Counts: st.Counts, Labels: []status.LabelStatus{}, LastResult: st.LastResult, LastError: st.LastError,
			ModelError: st.Models.LastError, LastCheck: st.Models.LastCheck, ModelFailures: st.Models.Failures,
			Latency: status.LatencyStatus{Bounds: st.Latency.Bounds, Counts: st.Latency.Counts, SumSeconds: st.Latency.Sum,
				Count: st.Latency.Count, ModelSeconds: st.ModelSeconds}}
		for _, l := range st.Labels {
			is.Labels = append(is.Labels, status.LabelStatus{Label: l.Label, Count: l.Count, LastScore: l.LastScore})
		}
		f := st.File
		if f.Path == "" {
			f = st.Models.Current
		}
		if f.Path != "" {
			ms := &status.ModelStatus{File: f.Path, SHA256: f.SHA256, Version: f.Version}
			if m := st.Model; m != nil {
				ms.Project = m.Project.Owner + " / " + m.Project.Name
				if ms.Version == 0 {
					ms.Version = m.Project.DeployVersion
				}
				ms.Type, ms.Sensor, ms.Labels = m.Kind(), m.SensorName(), m.Params.Labels
			}
			is.Model = ms
		}
		// No secret reaches /status: a model's or Studio's text is a peer's.
		is.LastError = a.opts.Secrets.Peer(is.LastError, maxStatusText)
		is.ModelError = a.opts.Secrets.Peer(is.ModelError, maxStatusText)
		out = append(out, is)
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// newRules builds the rules of cfg (nil when there are none). The links
// their actions name are looked up in the running ones, so a reload builds
// them after its links.
func (a *Agent) newRules(cfg *config.Config) *rules.Engine {
	if len(cfg.Rules) == 0 {
		return nil
	}
	return rules.New(cfg.Rules, a.hub, a.linkFor, rules.Options{Clock: a.opts.Clock, Logger: a.log})
}

// runRules starts eng (nil: nothing to run); the returned function stops
// it, which stops the recordings its rules started, and waits.
func (a *Agent) runRules(ctx context.Context, eng *rules.Engine) (stop func()) {
	if eng == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// rulesStatus is the part of /status of the rules eng runs.
func (a *Agent) rulesStatus(eng *rules.Engine) []status.RuleStatus {
	if eng == nil {
		return nil
	}
	var out []status.RuleStatus
	for _, r := range eng.Status() {
		rs := status.RuleStatus{Name: r.Name, Model: r.Model, Label: r.Label, MinScore: r.MinScore,
			ForSeconds: r.For.Seconds(), MinIntervalSeconds: r.MinInterval.Seconds(), State: r.State,
			Results: r.Results, Fired: r.Fired, Suppressed: r.Suppressed, LastFired: r.LastFired,
			LastScore: r.LastScore, LastError: a.opts.Secrets.Peer(r.LastError, maxStatusText),
			Actions: []status.ActionStatus{}}
		for _, ac := range r.Actions {
			rs.Actions = append(rs.Actions, status.ActionStatus{Do: ac.Do, Link: ac.Link, OK: ac.OK, Failed: ac.Failed,
				LastAt: ac.LastAt, LastError: a.opts.Secrets.Peer(ac.LastError, maxStatusText)})
		}
		out = append(out, rs)
	}
	return out
}

// modelPlan is what a reload does to the models: a model whose key is the
// same, and that could be built, keeps running; the others are built anew.
type modelPlan struct {
	next     []*inferenceRunner // the models after the reload, in config order; nil where one is built
	build    []int              // indexes of next (and of the config's inference) to build
	drop     []*inferenceRunner // stopped and taken out of the hub
	changed  map[string]bool    // models whose stream comes, goes or is replaced
	monitors map[string]bool    // edgeimpulse links whose reported model changes
}

// planModels compares cfg's models with the running ones and records the
// outcome in st.
func (a *Agent) planModels(cfg *config.Config, st *status.ReloadChanges) modelPlan {
	p := modelPlan{changed: map[string]bool{}, monitors: map[string]bool{}}
	running := map[string]*inferenceRunner{}
	for _, r := range a.inference {
		running[r.cfg.Name] = r
	}
	kept := map[*inferenceRunner]bool{}
	for i, in := range cfg.Inference {
		prev, ok := running[in.Name]
		if ok && prev.stream != nil && reflect.DeepEqual(prev.key, modelKeyOf(cfg, in)) {
			p.next = append(p.next, prev)
			kept[prev] = true
			st.Unchanged = append(st.Unchanged, in.Name)
			continue
		}
		p.next = append(p.next, nil)
		p.build = append(p.build, i)
		p.changed[in.Name] = true
		if in.EdgeImpulse != "" {
			p.monitors[in.EdgeImpulse] = true
		}
		if ok {
			st.Restarted = append(st.Restarted, in.Name)
		} else {
			st.Added = append(st.Added, in.Name)
		}
	}
	for _, r := range a.inference {
		if kept[r] {
			continue
		}
		p.drop = append(p.drop, r)
		p.changed[r.cfg.Name] = true
		if r.cfg.EdgeImpulse != "" {
			p.monitors[r.cfg.EdgeImpulse] = true
		}
		if !slices.Contains(st.Restarted, r.cfg.Name) {
			st.Removed = append(st.Removed, r.cfg.Name)
		}
	}
	return p
}

// dropModels stops the models p replaces or removes and takes them out of
// the hub (their processes end), before the sensors change: a new sensor
// may take a model's name.
func (a *Agent) dropModels(p modelPlan) error {
	for _, r := range p.drop {
		a.stopModel(r)
		if err := a.hub.Remove(r.cfg.Name); err != nil {
			return fmt.Errorf("agent: reload: inference %s: %w", r.cfg.Name, err)
		}
		a.log.Info("model stopped by the reload", "inference", r.cfg.Name)
	}
	return nil
}

// buildModels builds p's new models into the hub and makes p's list the
// current one; startModel runs them once the links are started.
func (a *Agent) buildModels(cfg *config.Config, p modelPlan) error {
	for _, i := range p.build {
		r, err := a.buildModel(cfg, cfg.Inference[i])
		if err != nil {
			return fmt.Errorf("agent: reload: %w", err)
		}
		p.next[i] = r
	}
	a.mu.Lock()
	a.inference = p.next
	a.mu.Unlock()
	return nil
}
