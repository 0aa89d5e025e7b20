package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/agent/systemd"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/sensors"
)

// A reload (SIGHUP from `systemctl reload`, or Agent.Reload) re-reads the
// config file and changes only what it must:
//
//   - The file is loaded and validated completely first; a file with any
//     problem changes nothing, and the problems (file:line: path: message)
//     go to the log and to /status.
//   - A link restarts when its effective config changed: its block, its
//     backoff, and what every link is built from (device, state_dir,
//     spool, the top-level backoff). Links whose config is the same stay up
//     on their session; their reconnect and session counters do not move.
//   - A sensor whose config changed gets its new driver in place: the hub's
//     feed, and every subscription to it, stay; the feed's run is restarted
//     on the new driver. The links using it restart only if they must: when
//     the sensor's description (class, rate, frequencies, axes, size…) as
//     built from the config changed, since a link announces or negotiates
//     it at the start of a session, or when either driver could not be
//     built.
//   - Sensors and links are added and removed as the file says.
//   - A link that had failed for good (bad credentials) or could not be
//     built, and a sensor or model that could not be built, are tried again
//     even when their config is the same: a reload is how a user says
//     "try again" after fixing what the config points at.
//   - The log level and memory_limit are applied in place through
//     Options.ApplySettings; the other top-level settings (status.listen,
//     status.pprof, log.format) take effect at the next restart, which the
//     log and /status say.
//   - A model (`inference[]`) whose entry changed, or whose Studio link's
//     block did, is replaced: its process stops and the new one starts;
//     the links reading its results restart, and so does an edgeimpulse
//     link whose reported model changed. The other models keep running.
//   - Changed rules, or changed models, replace the running rules (their
//     counts start over, and a recording a rule started is stopped).
//
// Everything runs on Run's goroutine, one reload at a time, between the
// moments Run serves requests and signals.

// swappable is the hub's source for a configured sensor whose driver could
// be built: it runs the current driver, and a reload puts a new driver
// behind it without the hub (and the subscriptions through it) changing.
// The agent swaps, then asks the hub to restart the feed's run
// (hub.Restart), which opens the new driver once the old one's Run has
// returned and released the device.
//
// Concurrency: Info, Run, RequestKeyframe and StallTimeouts may be called
// from any goroutine, concurrently with swap.
type swappable struct {
	mu  sync.Mutex
	cur sensors.Source
}

func (s *swappable) current() sensors.Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *swappable) swap(src sensors.Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = src
}

// Info is the current driver's.
func (s *swappable) Info() sensors.Info { return s.current().Info() }

// Run runs the current driver once; the hub restarts it as it would the
// driver itself.
func (s *swappable) Run(ctx context.Context, out chan<- sensors.Sample) error {
	return s.current().Run(ctx, out)
}

// RequestKeyframe passes the request to a driver that can force a keyframe.
func (s *swappable) RequestKeyframe() error {
	if k, ok := s.current().(sensors.KeyframeRequester); ok {
		return k.RequestKeyframe()
	}
	return sensors.ErrNoKeyframeControl
}

// The hub's optional stall-timeout interface, which the wrapper passes on
// so the hub watches the driver as if it held it directly.
var _ hub.Watched = (*swappable)(nil)

// StallTimeouts are the driver's; zero (no watchdog) for a driver without.
func (s *swappable) StallTimeouts() (firstSample, stall time.Duration) {
	if w, ok := s.current().(hub.Watched); ok {
		return w.StallTimeouts()
	}
	return 0, 0
}

// sensorEntry is one configured sensor as the agent built it.
type sensorEntry struct {
	cfg    config.Sensor
	driver sensors.Source // built from cfg; nil when it could not be
	err    error          // why it could not
	// src is what the hub holds: a swappable around driver, or around an
	// earlier driver that a reload replaces with this one. Nil with driver.
	src *swappable
	// info is the driver's description as built from the config, before
	// it opened a device (which may refine the rate): what a reload
	// compares to decide whether the links using the sensor must restart.
	info sensors.Info
}

// buildSensor builds the driver of s; a failure is kept in the entry.
func buildSensor(s config.Sensor, env sensors.Env) *sensorEntry {
	e := &sensorEntry{cfg: s}
	src, err := NewSource(s, env)
	if err != nil {
		e.err = err
		e.info = sensors.Info{Name: s.Name, Kind: s.Kind}
		return e
	}
	e.driver, e.src, e.info = src, &swappable{cur: src}, src.Info()
	return e
}

// addTo registers the entry with the hub: its source, or the reason it has
// none, so /status shows it and Subscribe returns that reason.
func (e *sensorEntry) addTo(h *hub.Hub, log func(msg string, args ...any)) error {
	if e.src != nil {
		return h.Add(e.src)
	}
	log("sensor cannot be built; links using it will fail to subscribe", "sensor", e.cfg.Name, "kind", e.cfg.Kind, "err", e.err)
	return h.AddFailed(sensors.Info{Name: e.cfg.Name, Kind: e.cfg.Kind}, e.err)
}

// linkKey is everything a link is built from: two equal keys build the
// same link, so a reload leaves it running.
type linkKey struct {
	Link     config.Link
	Backoff  config.Backoff // the top-level policy (a link's own is in Link)
	Spool    config.Spool
	StateDir string
	Device   config.Device
}

func linkKeyOf(cfg *config.Config, l config.Link) linkKey {
	return linkKey{Link: l, Backoff: cfg.Backoff, Spool: cfg.Spool, StateDir: cfg.StateDir, Device: cfg.Device}
}

type reloadRequest struct{ reply chan reloadReply }

type reloadReply struct {
	st  status.ReloadStatus
	err error
}

// ErrNotRunning is returned by Reload once Run has returned.
var ErrNotRunning = errors.New("agent: not running")

// Reload re-reads the config and applies it as a value on Options.Reload
// does, and returns what it changed. It waits for Run to apply it (and for
// Run to start, if it has not yet); once Run has returned it fails with
// ErrNotRunning. A refused file returns the loader's error (a
// *config.Error lists every problem as file:line) and changes nothing.
// Safe for concurrent use; reloads are applied one at a time.
func (a *Agent) Reload(ctx context.Context) (status.ReloadStatus, error) {
	req := reloadRequest{reply: make(chan reloadReply, 1)}
	select {
	case a.reloads <- req:
	case <-a.ended:
		return status.ReloadStatus{}, ErrNotRunning
	case <-ctx.Done():
		return status.ReloadStatus{}, fmt.Errorf("agent: reload: %w", ctx.Err())
	}
	select {
	case r := <-req.reply:
		return r.st, r.err
	case <-ctx.Done():
		return status.ReloadStatus{}, fmt.Errorf("agent: reload: %w", ctx.Err())
	}
}

// loadConfig reads the config again, through Options.LoadConfig when the
// command gave one.
func (a *Agent) loadConfig() (*config.Config, error) {
	if a.opts.LoadConfig != nil {
		return a.opts.LoadConfig()
	}
	if a.cfg.File == "" {
		return nil, errors.New("the config was not loaded from a file")
	}
	return config.Load(a.cfg.File)
}

// reload applies the config file as it is now; see the comment at the top
// of this file. ctx is Run's: when it ends while links are stopping, the
// reload is abandoned half-way and Run shuts down. Called on Run's
// goroutine only.
func (a *Agent) reload(ctx context.Context, n *systemd.Notifier) (status.ReloadStatus, error) {
	st := status.ReloadStatus{At: a.opts.Clock.Now()}
	a.log.Info("reloading the config")
	cfg, err := a.loadConfig()
	if err == nil {
		err = os.MkdirAll(cfg.StateDir, 0o700)
	}
	if err != nil {
		st.Error = a.opts.Secrets.Peer(err.Error(), maxStatusText) // the file's problems; Error set says refused
		err = fmt.Errorf("agent: reload refused, nothing changed: %w", err)
		a.log.Error("config reload refused; nothing changed", "err", err)
		a.setReload(st)
		n.Status("reload refused: the config has problems (see the log)")
		return st, err
	}
	for _, w := range cfg.Warnings {
		a.log.Warn("config: " + w)
	}
	a.opts.Secrets.Add(cfg.Secrets...)
	old := a.cfg

	// Sensors: build every new and changed driver before anything stops,
	// and find the sensors whose links must restart.
	newSensors := map[string]*sensorEntry{}
	var swaps, replaces, adds []*sensorEntry
	mustRestart := map[string]bool{} // sensors whose links restart
	for _, s := range cfg.Sensors {
		prev, ok := a.sensors[s.Name]
		switch {
		case !ok:
			e := buildSensor(s, a.opts.Env)
			newSensors[s.Name], adds = e, append(adds, e)
			st.Sensors.Added = append(st.Sensors.Added, s.Name)
		case reflect.DeepEqual(prev.cfg, s) && prev.src != nil:
			newSensors[s.Name] = prev
			st.Sensors.Unchanged = append(st.Sensors.Unchanged, s.Name)
		default:
			e := buildSensor(s, a.opts.Env)
			if e.src == nil && prev.src == nil && reflect.DeepEqual(prev.cfg, s) {
				// Could not be built before and still cannot: as it was.
				newSensors[s.Name] = prev
				st.Sensors.Unchanged = append(st.Sensors.Unchanged, s.Name)
				continue
			}
			st.Sensors.Restarted = append(st.Sensors.Restarted, s.Name)
			if prev.src != nil && e.src != nil {
				// Keep the hub's source; only its driver changes.
				e.src = prev.src
				swaps = append(swaps, e)
				if !reflect.DeepEqual(prev.info, e.info) {
					mustRestart[s.Name] = true
				}
			} else {
				replaces = append(replaces, e)
				mustRestart[s.Name] = true
			}
			newSensors[s.Name] = e
		}
	}
	var removed []string
	for _, s := range old.Sensors {
		if _, ok := newSensors[s.Name]; !ok {
			removed = append(removed, s.Name)
			mustRestart[s.Name] = true
		}
	}
	st.Sensors.Removed = removed

	// Models: keep, replace, add or remove each; the links reading a model
	// that changes restart like those of a sensor, and an edgeimpulse link
	// whose reported model changes restarts to report the new one.
	models := a.planModels(cfg, &st.Inference)

	// Links: keep, restart, add or remove each.
	cur := a.linkRunners()
	byName := map[string]*linkRunner{}
	for _, r := range cur {
		byName[r.cfg.Name] = r
	}
	type planned struct {
		l    config.Link
		keep *linkRunner // nil: build it
	}
	var plan []planned
	var stop []*linkRunner
	inNew := map[string]bool{}
	for _, l := range cfg.Links {
		if l.Disabled {
			continue
		}
		inNew[l.Name] = true
		r, ok := byName[l.Name]
		if !ok {
			plan = append(plan, planned{l: l})
			st.Links.Added = append(st.Links.Added, l.Name)
			continue
		}
		why := ""
		switch {
		case !reflect.DeepEqual(r.key, linkKeyOf(cfg, l)):
			why = "its config changed"
		case r.sup == nil:
			why = "it could not be built before"
		case r.sup.Status().State == supervisor.Failed:
			why = "it had failed"
		case models.monitors[l.Name]:
			why = "the model it reports changed"
		default:
			for _, ref := range config.SensorRefs(&l) {
				if models.changed[ref.Name] {
					why = "model " + ref.Name + " changed"
					break
				}
				if mustRestart[ref.Name] {
					why = "sensor " + ref.Name + " changed"
					break
				}
			}
		}
		if why == "" {
			plan = append(plan, planned{l: l, keep: r})
			st.Links.Unchanged = append(st.Links.Unchanged, l.Name)
			continue
		}
		a.log.Info("link restarts for the reload: "+why, "link", l.Name, "kind", l.Kind)
		plan = append(plan, planned{l: l})
		stop = append(stop, r)
		st.Links.Restarted = append(st.Links.Restarted, l.Name)
	}
	for _, r := range cur {
		if !inNew[r.cfg.Name] {
			a.log.Info("link removed by the reload", "link", r.cfg.Name, "kind", r.cfg.Kind)
			stop = append(stop, r)
			st.Links.Removed = append(st.Links.Removed, r.cfg.Name)
		}
	}
	st.Applied, st.NeedsRestart = a.settingChanges(cfg)
	// The rules read the models' streams: changed models rebuild them too.
	newRules := slices.Contains(st.Applied, "rules") || len(models.changed) > 0
	if newRules {
		// First, while the links run: stopping the rules stops the
		// recordings they started.
		a.stopRules()
		a.stopRules = func() {}
	}

	// Stop what goes away or restarts before the sensors change under it
	// and before its replacement opens the same spool directory.
	if err := a.stopLinks(ctx, stop); err != nil {
		return st, err
	}
	if err := a.dropModels(models); err != nil {
		return st, err
	}
	warn := func(msg string, args ...any) { a.log.Error(msg, args...) }
	for _, name := range removed {
		if err := a.hub.Remove(name); err != nil {
			return st, fmt.Errorf("agent: reload: %w", err)
		}
		a.log.Info("sensor removed by the reload", "sensor", name)
	}
	for _, e := range replaces {
		if err := a.hub.Remove(e.cfg.Name); err != nil {
			return st, fmt.Errorf("agent: reload: %w", err)
		}
		if err := e.addTo(a.hub, warn); err != nil {
			return st, fmt.Errorf("agent: reload: %w", err)
		}
		a.log.Info("sensor rebuilt by the reload; the links using it restart", "sensor", e.cfg.Name, "kind", e.cfg.Kind)
	}
	for _, e := range swaps {
		e.src.swap(e.driver)
		if err := a.hub.Restart(e.cfg.Name); err != nil {
			return st, fmt.Errorf("agent: reload: %w", err)
		}
		a.log.Info("sensor restarted with its new config", "sensor", e.cfg.Name, "kind", e.cfg.Kind,
			"links_restart", mustRestart[e.cfg.Name])
	}
	for _, e := range adds {
		if err := e.addTo(a.hub, warn); err != nil {
			return st, fmt.Errorf("agent: reload: %w", err)
		}
		a.log.Info("sensor added by the reload", "sensor", e.cfg.Name, "kind", e.cfg.Kind)
	}
	a.sensors = newSensors
	if err := a.buildModels(cfg, models); err != nil { // before the links: they attach their monitors
		return st, err
	}

	now := a.opts.Clock.Now()
	links := make([]*linkRunner, 0, len(plan))
	var started []*linkRunner
	for _, p := range plan {
		if p.keep != nil {
			links = append(links, p.keep)
			continue
		}
		r := a.buildLink(cfg, p.l, now)
		links = append(links, r)
		started = append(started, r)
	}
	a.mu.Lock()
	a.cfg, a.links = cfg, links
	a.mu.Unlock()
	for _, r := range started {
		a.startLink(r)
	}
	for _, i := range models.build {
		a.startModel(a.linkCtx, models.next[i])
	}
	if newRules {
		// After the links: a rule binds its actions to the running ones.
		eng := a.newRules(cfg)
		a.mu.Lock()
		a.rules = eng
		a.mu.Unlock()
		a.stopRules = a.runRules(a.linkCtx, eng)
		a.log.Info("rules replaced by the reload", "rules", len(cfg.Rules))
	}
	if a.opts.ApplySettings != nil {
		a.opts.ApplySettings(cfg)
	}
	a.noteApplied(cfg, st.Applied)
	for _, k := range st.NeedsRestart {
		a.log.Warn("config reload: " + k + " changed; it takes effect at the next restart of the agent")
	}
	a.setReload(st)
	a.log.Info("config reloaded",
		"links_added", st.Links.Added, "links_removed", st.Links.Removed,
		"links_restarted", st.Links.Restarted, "links_unchanged", st.Links.Unchanged,
		"sensors_added", st.Sensors.Added, "sensors_removed", st.Sensors.Removed,
		"sensors_restarted", st.Sensors.Restarted, "models_added", st.Inference.Added,
		"models_removed", st.Inference.Removed, "models_restarted", st.Inference.Restarted, "applied", st.Applied)
	n.Status(fmt.Sprintf("%d sensors, %d links; reloaded: %s", len(cfg.Sensors), len(links), st.Summary()))
	return st, nil
}

// settingChanges compares cfg's top-level settings that are not sensors,
// links, models or part of every link's key with those in effect
// (a.inEffect, not the last file: a setting that waits for a restart and
// is then changed back is no longer pending). The log level and
// memory_limit are applied in place when the command gave ApplySettings,
// and rules always; every other changed key (status.listen, status.pprof,
// log.format, and a key added later until the reload learns it) takes
// effect at the next restart.
func (a *Agent) settingChanges(cfg *config.Config) (applied, needsRestart []string) {
	live := a.opts.ApplySettings != nil
	cur := a.inEffect
	ov, nv := reflect.ValueOf(cur).Elem(), reflect.ValueOf(cfg).Elem()
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		switch name {
		case "sensors", "links", "inference", "device", "state_dir", "spool", "backoff":
			continue // compared per sensor, per link and per model
		}
		if reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			continue
		}
		switch {
		case name == "log":
			if cur.Log.Level != cfg.Log.Level {
				if live {
					applied = append(applied, "log.level")
				} else {
					needsRestart = append(needsRestart, "log.level")
				}
			}
			if cur.Log.Format != cfg.Log.Format {
				needsRestart = append(needsRestart, "log.format")
			}
		case name == "memory_limit" && live:
			applied = append(applied, name)
		case name == "rules":
			// Rebuilt once the models and links are in place.
			applied = append(applied, name)
		default:
			needsRestart = append(needsRestart, name)
		}
	}
	return applied, needsRestart
}

// noteApplied records the settings of cfg a reload applied in place as in
// effect.
func (a *Agent) noteApplied(cfg *config.Config, applied []string) {
	for _, k := range applied {
		switch k {
		case "log.level":
			a.inEffect.Log.Level = cfg.Log.Level
		case "memory_limit":
			a.inEffect.MemoryLimit = cfg.MemoryLimit
		case "rules":
			a.inEffect.Rules = cfg.Rules
		}
	}
}

func (a *Agent) setReload(st status.ReloadStatus) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastReload = &st
}

// linkRunners returns the current links.
func (a *Agent) linkRunners() []*linkRunner {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.links)
}

// startLink runs r's supervisor under Run's link context; a link that
// could not be built has none and stays failed. Called on Run's goroutine.
func (a *Agent) startLink(r *linkRunner) {
	if r.sup == nil {
		return
	}
	ctx, cancel := context.WithCancel(a.linkCtx)
	r.stop, r.done = cancel, make(chan struct{})
	a.linkWG.Add(1)
	go func() {
		defer a.linkWG.Done()
		defer close(r.done)
		_ = r.sup.Run(ctx)
	}()
}

// stopLinks stops the given links and waits until every one has stopped.
// A link slower than ShutdownTimeout is logged and still waited for: its
// replacement must not open the same spool while it runs. It returns an
// error only when ctx (Run's) ends first.
func (a *Agent) stopLinks(ctx context.Context, rs []*linkRunner) error {
	for _, r := range rs {
		if r.stop != nil {
			r.stop()
		}
	}
	slow := clock.AfterTimer(a.opts.Clock, ShutdownTimeout)
	defer slow.Stop()
	for _, r := range rs {
		if r.done == nil {
			continue
		}
		for waiting := true; waiting; {
			select {
			case <-r.done:
				waiting = false
			case <-slow.C():
				a.log.Warn("link has not stopped yet; the reload waits for it", "link", r.cfg.Name, "after", ShutdownTimeout)
			case <-ctx.Done():
				return fmt.Errorf("agent: reload abandoned: %w", ctx.Err())
			}
		}
	}
	return nil
}
