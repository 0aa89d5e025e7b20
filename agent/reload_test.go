package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/infer/infertest"
	"github.com/edge-agent/edge-agent/agent/sim"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

// reloadRig is an agent running the demo's config (four synthetic sensors,
// one link of every kind, each against its fake) from a file the test
// rewrites between reloads.
type reloadRig struct {
	t      *testing.T
	path   string
	doc    map[string]any // the file as last written
	a      *agent.Agent
	ei     *eitest.Sim
	cam    *camservertest.Sim
	log    *logxtest.Buffer
	before map[string]status.LinkStatus // the links as last recorded
}

func newReloadRig(t *testing.T) *reloadRig {
	t.Helper()
	return newReloadRigWith(t, "")
}

// newReloadRigWith is newReloadRig whose demo config runs modelProgram as
// its model on the camera, with its rule (sim.Clouds.ModelProgram); ""
// is the demo without them.
func newReloadRigWith(t *testing.T, modelProgram string) *reloadRig {
	t.Helper()
	clouds, err := sim.Start("127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clouds.Close)
	clouds.ModelProgram = modelProgram
	_, path, err := clouds.WriteDemoConfig(t.TempDir(), config.Status{})
	if err != nil {
		t.Fatal(err)
	}
	r := &reloadRig{t: t, path: path, log: &logxtest.Buffer{}}
	for _, s := range clouds.Services {
		if ei, ok := s.(*eitest.Sim); ok {
			r.ei = ei
		}
		if cam, ok := s.(*camservertest.Sim); ok {
			r.cam = cam
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &r.doc); err != nil {
		t.Fatal(err)
	}
	// A fixed identity: the demo's "auto" is resolved by the command.
	r.doc["device"] = map[string]any{"id": "reload-test", "name": "bench", "type": "TEST"}
	r.write()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r.a, err = agent.New(cfg, agent.Options{Version: "test", Logger: slog.New(slog.NewTextHandler(r.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	agenttest.Eventually(t, "every link up", func() bool { return r.allUp() })
	r.record()
	return r
}

func (r *reloadRig) write() {
	r.t.Helper()
	b, err := yaml.Marshal(r.doc)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.path, b, 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// sensor and link return the file's entry named name, to edit.
func (r *reloadRig) sensor(name string) map[string]any { return entry(r.t, r.doc["sensors"], name) }
func (r *reloadRig) link(name string) map[string]any   { return entry(r.t, r.doc["links"], name) }

func entry(t *testing.T, list any, name string) map[string]any {
	t.Helper()
	for _, e := range list.([]any) {
		if m := e.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no entry %q in %v", name, list)
	return nil
}

func (r *reloadRig) reload() status.ReloadStatus {
	r.t.Helper()
	st, err := r.a.Reload(context.Background())
	if err != nil {
		r.t.Fatalf("reload: %v\nlog:\n%s", err, r.log)
	}
	return st
}

func (r *reloadRig) allUp() bool {
	for _, l := range r.a.Snapshot().Links {
		if l.State != "up" {
			return false
		}
	}
	return true
}

func (r *reloadRig) record() {
	r.before = map[string]status.LinkStatus{}
	for _, l := range r.a.Snapshot().Links {
		r.before[l.Name] = l
	}
}

// untouched checks that the links named kept the session they had when
// last recorded: still up, not one reconnect or new session more.
func (r *reloadRig) untouched(names ...string) {
	r.t.Helper()
	now := map[string]status.LinkStatus{}
	for _, l := range r.a.Snapshot().Links {
		now[l.Name] = l
	}
	for _, n := range names {
		b, a := r.before[n], now[n]
		if a.State != "up" || a.Reconnects != b.Reconnects || a.Sessions != b.Sessions || !a.Since.Equal(b.Since) {
			r.t.Errorf("link %s was touched by the reload: before %s sessions=%d reconnects=%d since %v, now %s sessions=%d reconnects=%d since %v",
				n, b.State, b.Sessions, b.Reconnects, b.Since, a.State, a.Sessions, a.Reconnects, a.Since)
		}
		// The figure docs/BENCHMARKS.md quotes (go test -v -run TestReload ./agent/).
		r.t.Logf("untouched link %-10s sessions %d -> %d, reconnects %d -> %d", n, b.Sessions, a.Sessions, b.Reconnects, a.Reconnects)
	}
}

// links returns the links of the running config other than except.
func (r *reloadRig) links(except ...string) []string {
	var out []string
	for _, l := range r.a.Snapshot().Links {
		if !slices.Contains(except, l.Name) {
			out = append(out, l.Name)
		}
	}
	return out
}

// usersOf returns the links whose block names sensor.
func (r *reloadRig) usersOf(sensor string) []string {
	cfg, err := config.Load(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for i := range cfg.Links {
		for _, ref := range config.SensorRefs(&cfg.Links[i]) {
			if ref.Name == sensor && !slices.Contains(out, cfg.Links[i].Name) {
				out = append(out, cfg.Links[i].Name)
			}
		}
	}
	return out
}

func same(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func helloSensors(h eitest.Hello) []any { s, _ := h.Fields["sensors"].([]any); return s }

// TestReloadRestartsOnlyWhatChanged is the reload contract against every
// link kind's fake: a changed link reconnects with its new config and no
// other link's session moves; a broken file changes nothing and names
// file:line; a sensor change the links need not see restarts only the
// sensor, one they must see restarts the links using it; links and sensors
// are added and removed.
func TestReloadRestartsOnlyWhatChanged(t *testing.T) {
	r := newReloadRig(t)
	all := r.links()
	if len(all) != 4 {
		t.Fatalf("the demo config has links %v, want one per kind", all)
	}

	t.Run("one link changed", func(t *testing.T) {
		hellos := len(r.ei.Hellos())
		r.link("edgeimpulse")["edgeimpulse"].(map[string]any)["sensors"] = []any{"accel", "mic"}
		r.write()
		st := r.reload()
		if !same(st.Links.Restarted, []string{"edgeimpulse"}) || !same(st.Links.Unchanged, r.links("edgeimpulse")) ||
			len(st.Links.Added)+len(st.Links.Removed)+len(st.Sensors.Restarted)+len(st.Sensors.Added)+len(st.Sensors.Removed) != 0 {
			t.Errorf("reload status %+v", st)
		}
		agenttest.Eventually(t, "edgeimpulse back with its new config", func() bool {
			h := r.ei.Hellos()
			return len(h) > hellos && len(helloSensors(h[len(h)-1])) == 2 && r.allUp()
		})
		r.untouched(r.links("edgeimpulse")...)
		if got := r.a.Snapshot().Reload; got == nil || got.Error != "" || !same(got.Links.Restarted, []string{"edgeimpulse"}) {
			t.Errorf("/status reload = %+v", got)
		}
		r.record()
	})

	t.Run("broken file", func(t *testing.T) {
		hellos := len(r.ei.Hellos())
		good, err := os.ReadFile(r.path)
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Count(string(good), "\n") + 1
		broken := string(good) + "sensorz: []\n"
		os.WriteFile(r.path, []byte(broken), 0o600)
		_, err = r.a.Reload(context.Background())
		var cerr *config.Error
		want := fmt.Sprintf("%s:%d: sensorz", r.path, line)
		if !errors.As(err, &cerr) || !strings.Contains(err.Error(), want) {
			t.Fatalf("reload of a broken file: %v, want a config error naming %q", err, want)
		}
		if got := r.a.Snapshot().Reload; got == nil || !strings.Contains(got.Error, want) {
			t.Errorf("/status reload = %+v, want the error naming %s", got, want)
		}
		if !strings.Contains(r.log.String(), want) {
			t.Errorf("the log does not name %s:\n%s", want, r.log)
		}
		r.untouched(all...)
		if n := len(r.ei.Hellos()); n != hellos {
			t.Errorf("edgeimpulse said Hello %d more times", n-hellos)
		}
		r.write() // the good file again
	})

	t.Run("sensor changed, links need not see it", func(t *testing.T) {
		sub, err := r.a.Hub().Subscribe("accel", sensors.SubscribeOptions{Queue: 256})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		// The amplitude changes the readings, not the description.
		r.sensor("accel")["synthetic"].(map[string]any)["amplitude"] = 40.0
		r.write()
		st := r.reload()
		if !same(st.Sensors.Restarted, []string{"accel"}) || len(st.Links.Restarted) != 0 {
			t.Errorf("reload status %+v", st)
		}
		// The subscription from before the reload sees the new driver.
		deadline := time.After(agenttest.Patience)
		for big := false; !big; {
			select {
			case s, ok := <-sub.C():
				if !ok {
					t.Fatal("the subscription was closed by the reload")
				}
				big = math.Abs(s.Values[0]) > 10
			case <-deadline:
				t.Fatal("no reading from the new driver (amplitude 40) on the old subscription")
			}
		}
		r.untouched(all...)
	})

	t.Run("sensor changed, its links must see it", func(t *testing.T) {
		users := r.usersOf("accel")
		if len(users) == 0 || len(users) == len(all) {
			t.Fatalf("accel is used by %v: the case needs users and others", users)
		}
		r.sensor("accel")["synthetic"].(map[string]any)["frequencies"] = []any{100.0, 50.0}
		r.write()
		hellos := len(r.ei.Hellos())
		st := r.reload()
		if !same(st.Sensors.Restarted, []string{"accel"}) || !same(st.Links.Restarted, users) {
			t.Errorf("reload status %+v, want accel and its links %v restarted", st, users)
		}
		agenttest.Eventually(t, "edgeimpulse offers the new frequencies", func() bool {
			h := r.ei.Hellos()
			return len(h) > hellos && strings.Contains(fmt.Sprint(helloSensors(h[len(h)-1])), "50") && r.allUp()
		})
		r.untouched(r.links(users...)...)
		r.record()
	})

	t.Run("a model that cannot start, and its rule, added then removed", func(t *testing.T) {
		r.doc["inference"] = []any{map[string]any{"name": "people", "sensor": "cam", "model": "/nonexistent/people.eim"}}
		r.doc["rules"] = []any{map[string]any{"name": "seen", "model": "people", "when": map[string]any{"label": "person"},
			"then": []any{map[string]any{"camserver.message": map[string]any{"msg": "seen"}}}}}
		r.write()
		st := r.reload()
		if !same(st.Inference.Added, []string{"people"}) || !same(st.Applied, []string{"rules"}) || len(st.NeedsRestart) != 0 ||
			len(st.Links.Restarted) != 0 || len(st.Links.Added) != 0 {
			t.Errorf("reload status %+v, want the model added, the rules applied and no link touched", st)
		}
		var m status.InferenceStatus
		ctx, cancel := context.WithTimeout(context.Background(), agenttest.Patience)
		defer cancel()
		if err := agenttest.Poll(ctx, "", func() bool {
			m = model(r.a.Snapshot(), "people")
			return m.State == "waiting" && strings.Contains(m.LastError, "/nonexistent/people.eim")
		}); err != nil {
			t.Errorf("the model is %+v, want it waiting for its file, saying which", m)
		}
		if rs := r.a.Snapshot().Rules; len(rs) != 1 || rs[0].Name != "seen" {
			t.Errorf("rules %+v", rs)
		}
		r.untouched(all...)
		delete(r.doc, "inference")
		delete(r.doc, "rules")
		r.write()
		st = r.reload()
		if !same(st.Inference.Removed, []string{"people"}) || len(st.Links.Restarted) != 0 {
			t.Errorf("reload status %+v, want the model removed and no link touched", st)
		}
		if snap := r.a.Snapshot(); len(snap.Inference) != 0 || len(snap.Rules) != 0 {
			t.Errorf("/status shows models %v and rules %v after they were removed", snap.Inference, snap.Rules)
		}
		r.untouched(all...)
	})

	t.Run("link and sensor added, then removed", func(t *testing.T) {
		fake, err := eitest.New(eitest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer fake.Close()
		r.doc["sensors"] = append(r.doc["sensors"].([]any), map[string]any{
			"name": "extra", "kind": "synthetic", "synthetic": map[string]any{"signal": "motion", "frequencies": []any{20.0}}})
		r.doc["links"] = append(r.doc["links"].([]any), map[string]any{
			"name": "ei2", "kind": "edgeimpulse", "edgeimpulse": map[string]any{"api_key": fake.APIKey(),
				"remote_mgmt_url": fake.WSURL(), "ingestion_url": fake.IngestionURL(), "sensors": []any{"extra"}}})
		r.write()
		st := r.reload()
		if !same(st.Links.Added, []string{"ei2"}) || !same(st.Sensors.Added, []string{"extra"}) || len(st.Links.Restarted) != 0 {
			t.Errorf("reload status %+v", st)
		}
		agenttest.Eventually(t, "ei2 up, offering extra", func() bool {
			h := fake.Hellos()
			return len(h) == 1 && strings.Contains(fmt.Sprint(helloSensors(h[0])), "extra") && r.allUp()
		})
		r.untouched(all...)

		r.doc["sensors"] = r.doc["sensors"].([]any)[:len(r.doc["sensors"].([]any))-1]
		r.doc["links"] = r.doc["links"].([]any)[:len(r.doc["links"].([]any))-1]
		r.write()
		st = r.reload()
		if !same(st.Links.Removed, []string{"ei2"}) || !same(st.Sensors.Removed, []string{"extra"}) || len(st.Links.Restarted) != 0 {
			t.Errorf("reload status %+v", st)
		}
		if _, ok := r.a.Hub().Info("extra"); ok {
			t.Error("sensor extra still in the hub")
		}
		if got := r.links(); !same(got, all) {
			t.Errorf("links after removal: %v", got)
		}
		agenttest.Eventually(t, "ei2 disconnected", func() bool { return !fake.Connected() })
		r.untouched(all...)
	})
}

// TestReloadModelsAndRules: a reload changes the models and rules in
// place. Rules alone: the new rule acts, the old one is gone from /status,
// no link or model is touched. A model's entry changed: that model's
// process is replaced, the edgeimpulse link that now reports it restarts
// (and announces it), the other links keep their sessions, and the rules
// are rebuilt on the new stream. A model removed: its process ends, its
// stream leaves the hub; added back, it runs again.
func TestReloadModelsAndRules(t *testing.T) {
	rt, err := os.MkdirTemp("", "rt") // t.TempDir's long names overflow a socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rt) })
	t.Setenv("RUNTIME_DIRECTORY", rt)
	r := newReloadRigWith(t, infertest.Fake(t))
	all := r.links()
	agenttest.Eventually(t, "the demo's rule reads the model's results", func() bool {
		rs := r.a.Snapshot().Rules
		return len(rs) == 1 && rs[0].Name == sim.DemoRuleName && rs[0].Results > 0
	})
	r.record()
	quiet := func(name, msg string) []any {
		// The demo's camera shows no visitor most of the time: a rule on
		// the label "empty" fires as soon as it runs.
		return []any{map[string]any{"name": name, "model": sim.DemoModelName,
			"when": map[string]any{"label": "empty", "min_score": 0.5},
			"then": []any{map[string]any{"camserver.message": map[string]any{"msg": msg}}}}}
	}
	sent := func(msg string) func() bool {
		return func() bool {
			return slices.ContainsFunc(r.cam.Messages(), func(m camservertest.Message) bool { return m.Msg == msg })
		}
	}

	// Rules alone.
	r.doc["rules"] = quiet("quiet", "quiet-after-reload")
	r.write()
	st := r.reload()
	if !same(st.Applied, []string{"rules"}) || len(st.NeedsRestart) != 0 || len(st.Links.Restarted) != 0 ||
		len(st.Sensors.Restarted) != 0 || !same(st.Inference.Unchanged, []string{sim.DemoModelName}) {
		t.Errorf("reload status %+v, want the rules applied and nothing else touched", st)
	}
	rs := r.a.Snapshot().Rules
	if len(rs) != 1 || rs[0].Name != "quiet" || len(rs[0].Actions) != 1 || rs[0].Actions[0].Do != config.ActionMessage {
		t.Fatalf("rules after the reload: %+v", rs)
	}
	agenttest.Eventually(t, "the new rule's message", sent("quiet-after-reload"))
	if f := r.a.Snapshot().Rules[0]; f.Fired == 0 || f.Actions[0].OK == 0 {
		t.Errorf("the new rule %+v did not fire and act", f)
	}
	if m := model(r.a.Snapshot(), sim.DemoModelName); m.State != "running" || m.Counts["starts"] > 1 {
		t.Errorf("the model was touched by the reload: %+v", m)
	}
	r.untouched(all...)

	// The model's entry changes: it now reports to the edgeimpulse link.
	entry := r.doc["inference"].([]any)[0].(map[string]any)
	entry["edgeimpulse"] = "edgeimpulse"
	r.doc["rules"] = quiet("renamed", "after-the-model-changed")
	r.write()
	st = r.reload()
	if !same(st.Inference.Restarted, []string{sim.DemoModelName}) || !same(st.Links.Restarted, []string{"edgeimpulse"}) ||
		!same(st.Applied, []string{"rules"}) || len(st.NeedsRestart) != 0 {
		t.Errorf("reload status %+v, want the model and the edgeimpulse link restarted, the rules applied", st)
	}
	agenttest.Eventually(t, "the new model classifies and the rebuilt rule acts", func() bool {
		m := model(r.a.Snapshot(), sim.DemoModelName)
		return m.State == "running" && m.Counts["classifications"] > 0 && sent("after-the-model-changed")()
	})
	agenttest.Eventually(t, "the edgeimpulse link announces the model", func() bool {
		hs := r.ei.Hellos()
		return len(hs) > 0 && hs[len(hs)-1].Fields["mode"] == "inference" && r.allUp()
	})
	r.untouched(r.links("edgeimpulse")...)

	// Removed, with its rules: the process ends, the stream leaves the hub.
	delete(r.doc, "inference")
	delete(r.doc, "rules")
	r.write()
	st = r.reload()
	if !same(st.Inference.Removed, []string{sim.DemoModelName}) || !same(st.Applied, []string{"rules"}) || len(st.NeedsRestart) != 0 ||
		!same(st.Links.Restarted, []string{"edgeimpulse"}) {
		t.Errorf("reload status %+v, want the model removed, the link that reported it restarted, the rules applied", st)
	}
	if snap := r.a.Snapshot(); len(snap.Rules) != 0 || len(snap.Inference) != 0 {
		t.Errorf("after removal /status shows models %+v and rules %+v", snap.Inference, snap.Rules)
	}
	if _, ok := r.a.Hub().Info(sim.DemoModelName); ok {
		t.Error("the model's stream is still in the hub")
	}
	if ents, _ := os.ReadDir(rt); len(ents) != 0 {
		t.Errorf("the runtime dir keeps %d model sockets' directories after the model was removed", len(ents))
	}

	// Added back.
	entry["edgeimpulse"] = nil
	delete(entry, "edgeimpulse")
	r.doc["inference"] = []any{entry}
	r.write()
	st = r.reload()
	if !same(st.Inference.Added, []string{sim.DemoModelName}) || len(st.Links.Restarted) != 0 {
		t.Errorf("reload status %+v, want the model added and no link touched", st)
	}
	agenttest.Eventually(t, "the model runs again", func() bool {
		return model(r.a.Snapshot(), sim.DemoModelName).Counts["classifications"] > 0
	})
}
