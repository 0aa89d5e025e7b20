package agent

import (
	"context"
	"fmt"
	"path/filepath"
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
// Models are built once, at New: a reload that changes `inference:`
// reports it as needing a restart (agent/reload.go's settingChanges); a
// reload that changes only `rules:` replaces the rules in place.

// inferenceRunner is one configured model.
type inferenceRunner struct {
	cfg      config.Inference
	stream   *infer.Stream // nil when it could not be built
	buildErr error
}

// buildInference builds every model of cfg and adds its stream to the hub.
// A model that cannot be built (its link's block is not there) is in the
// hub as failed, with the reason; only a hub refusing the name is fatal.
func (a *Agent) buildInference(cfg *config.Config) error {
	for _, in := range cfg.Inference {
		r := &inferenceRunner{cfg: in}
		a.inference = append(a.inference, r)
		log := a.log.With("inference", in.Name)
		st, err := a.newStream(cfg, in)
		if err != nil {
			r.buildErr = err
			log.Error("model cannot be built; it stays failed", "err", err)
			if err := a.hub.AddFailed(sensors.Info{Name: in.Name, Kind: "eim", Class: sensors.Inference}, err); err != nil {
				return fmt.Errorf("inference %s: %w", in.Name, err)
			}
			continue
		}
		r.stream = st
		if err := a.hub.Add(st); err != nil {
			return fmt.Errorf("inference %s: %w", in.Name, err)
		}
	}
	return nil
}

func (a *Agent) newStream(cfg *config.Config, in config.Inference) (*infer.Stream, error) {
	log := a.log.With("inference", in.Name)
	mo := infer.ModelsOptions{Path: in.Model, Target: in.Target, Variant: in.Variant,
		Dir: filepath.Join(cfg.StateDir, "models", in.Name), Clock: a.opts.Clock, Logger: log}
	if in.Model == "" {
		var block *edgeimpulse.Config
		for _, l := range cfg.Links {
			if l.Name == in.EdgeImpulse {
				block, _ = l.Block.(*edgeimpulse.Config)
			}
		}
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

// runInference starts, for every model, the agent's own subscription and
// the model source's updates; the returned function stops them and waits.
func (a *Agent) runInference(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, r := range a.inference {
		if r.stream == nil {
			continue
		}
		sub, err := a.hub.Subscribe(r.cfg.Name, sensors.SubscribeOptions{Queue: 4, Policy: sensors.DropOldest, Label: "agent"})
		if err != nil {
			a.log.Error("model not started", "inference", r.cfg.Name, "err", err)
			continue
		}
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
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// inferenceStatus is the models' part of /status.
func (a *Agent) inferenceStatus() []status.InferenceStatus {
	var out []status.InferenceStatus
	for _, r := range a.inference {
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
