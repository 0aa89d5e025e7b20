package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/infer"
	"github.com/edge-agent/edge-agent/agent/infer/infertest"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

func model(s status.Snapshot, name string) status.InferenceStatus {
	for _, m := range s.Inference {
		if m.Name == name {
			return m
		}
	}
	return status.InferenceStatus{}
}

// TestAgentRunsModels: a model downloaded through the edgeimpulse link and a
// local one run on the synthetic accelerometer from the start, whether or
// not anything else listens; /status and /metrics show their labels and
// latency; the link announces the downloaded model; shutdown stops both
// processes and removes their sockets.
func TestAgentRunsModels(t *testing.T) {
	bin := infertest.Fake(t)
	rt := t.TempDir()
	t.Setenv("RUNTIME_DIRECTORY", rt)
	fake, err := eitest.New(eitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.SetDeployment(infer.Target(), infertest.Model(t, bin, infertest.Config{Project: infertest.Project(1),
		Params: infertest.MotionParams(3, 50, 100, "idle", "wave"), Split: []float64{1}}))
	dir := t.TempDir()
	local := infertest.WriteModel(t, bin, dir, "local.eim", infertest.Config{Project: infertest.Project(4),
		Params: infertest.MotionParams(3, 20, 100, "low", "high"), Split: []float64{100}})
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(fake.APIKey()+"\n"), 0o600)
	yaml := fmt.Sprintf(`
device: {id: test-device, name: bench, type: TEST}
state_dir: %s
backoff: {min: 10ms, max: 50ms}
sensors:
  - {name: accel, kind: synthetic, synthetic: {signal: motion, frequencies: [100]}}
links:
  - name: ei
    kind: edgeimpulse
    edgeimpulse: {api_key_file: %s, remote_mgmt_url: %q, ingestion_url: %q, studio_url: %q, sensors: [accel]}
inference:
  - {name: gesture, sensor: accel, edgeimpulse: ei}
  - {name: level, sensor: accel, model: %s, interval: 100ms}
`, filepath.Join(dir, "state"), keyFile, fake.WSURL(), fake.IngestionURL(), fake.IngestionURL(), local)
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	a, addr, stop := runAgent(t, cfg, nil)
	agenttest.Eventually(t, "both models classify", func() bool {
		s := a.Snapshot()
		return model(s, "gesture").Counts["classifications"] > 0 && model(s, "level").Counts["classifications"] > 0
	})
	s := a.Snapshot()
	g, l := model(s, "gesture"), model(s, "level")
	if g.State != "running" || g.Source != "studio" || g.Model == nil || g.Model.Version != 1 || g.Model.Type != "classification" ||
		!strings.HasPrefix(g.Model.File, filepath.Join(dir, "state", "models", "gesture")) || len(g.Labels) != 2 {
		t.Fatalf("gesture = %+v (model %+v)", g, g.Model)
	}
	if l.Source != "file" || l.Model == nil || l.Model.File != local || l.Latency.Count == 0 || len(l.Latency.Counts) != len(l.Latency.Bounds)+1 {
		t.Fatalf("level = %+v", l)
	}
	if err := a.Healthy(); err != nil {
		t.Fatalf("unhealthy: %v", err)
	}
	agenttest.Eventually(t, "the link announces the model", func() bool {
		hs := fake.Hellos()
		return len(hs) > 0 && hs[len(hs)-1].Fields["mode"] == "inference" && fake.Connected()
	})
	code, body := httpGet(t, "http://"+addr+"/metrics", "")
	for _, want := range []string{`edge_agent_inference_classifications_total{model="gesture"}`,
		`edge_agent_inference_label_total{label="low",model="level"}`, `edge_agent_inference_label_score{label="wave",model="gesture"}`,
		`edge_agent_inference_latency_seconds_bucket{model="level",le="5"}`, `edge_agent_inference_running{model="gesture",sensor="accel"} 1`,
		`edge_agent_inference_events_total{event="starts",model="level"} 1`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := httpGet(t, "http://"+addr+"/status", ""); code != 200 || !strings.Contains(body, `"inference": [`) {
		t.Errorf("/status: %d", code)
	}
	stop()
	if st := model(a.Snapshot(), "gesture").State; st != "idle" {
		t.Errorf("gesture after shutdown: %s", st)
	}
	if ents, _ := os.ReadDir(rt); len(ents) != 0 {
		t.Errorf("the runtime dir keeps %d sockets' directories after shutdown", len(ents))
	}
}

// TestAgentSurvivesABrokenModel: a model that cannot start is shown failed
// with the reason; the sensor and the daemon go on.
func TestAgentSurvivesABrokenModel(t *testing.T) {
	bin := infertest.Fake(t)
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	dir := t.TempDir()
	broken := infertest.WriteModel(t, bin, dir, "broken.eim", infertest.Config{Project: infertest.Project(1),
		Params: infertest.MotionParams(3, 20, 100, "a"), FailStart: true})
	yaml := fmt.Sprintf(`
device: {id: test-device, name: bench, type: TEST}
state_dir: %s
sensors:
  - {name: accel, kind: synthetic, synthetic: {signal: motion, frequencies: [100]}}
inference:
  - {name: broken, sensor: accel, model: %s}
`, filepath.Join(dir, "state"), broken)
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := runAgent(t, cfg, nil)
	agenttest.Eventually(t, "the broken model is reported", func() bool {
		m := model(a.Snapshot(), "broken")
		return m.State == "failed" && strings.Contains(m.LastError, "failing at start") && m.Counts["start"] > 0
	})
	if err := a.Healthy(); err != nil {
		t.Fatalf("unhealthy: %v", err)
	}
}
