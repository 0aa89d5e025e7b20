package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestAgentIsolatesAPermanentLinkFailure runs the agent in-process with two
// Edge Impulse links, one with a wrong inline API key: that one must end
// failed (hello rejected is permanent for an inline key; a key file would be
// re-read and retried) while the other stays up, the sensors keep running,
// and shutdown leaves no goroutine behind.
func TestAgentIsolatesAPermanentLinkFailure(t *testing.T) {
	fake, err := eitest.New(eitest.Options{APIKey: "right-key"})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "good-key")
	os.WriteFile(good, []byte("right-key\n"), 0o600)
	yaml := fmt.Sprintf(`
device: {id: test-device, name: bench, type: TEST}
state_dir: %s
status: {listen: ""}
backoff: {min: 10ms, max: 50ms}
sensors:
  - {name: accel, kind: synthetic, synthetic: {signal: motion, frequencies: [100]}}
  - {name: mic, kind: microphone, microphone: {}}
links:
  - name: good
    kind: edgeimpulse
    edgeimpulse: {api_key_file: %s, remote_mgmt_url: %q, ingestion_url: %q, sensors: [accel]}
  - name: bad
    kind: edgeimpulse
    edgeimpulse: {api_key: wrong-key, remote_mgmt_url: %q, ingestion_url: %q, sensors: [accel]}
`, filepath.Join(dir, "state"), good, fake.WSURL(), fake.IngestionURL(), fake.WSURL(), fake.IngestionURL())
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	sub, err := a.Hub().Subscribe("accel", sensors.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-sub.C()
	agenttest.Eventually(t, "bad link failed and good link up", func() bool {
		s := a.Snapshot()
		return link(s, "bad").State == "failed" && link(s, "good").State == "up"
	})
	s := a.Snapshot()
	if e := link(s, "bad").LastError; e == "" {
		t.Error("failed link has no last_error")
	}
	if a.Healthy() != nil {
		t.Errorf("unhealthy: %v", a.Healthy())
	}
	// The microphone is either built (cgo) or shows why not; either way
	// the daemon runs.
	for _, x := range s.Sensors {
		if x.Name == "accel" && (x.State != "running" || x.Samples == 0) {
			t.Errorf("accel = %+v", x)
		}
	}
	sub.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(agent.ShutdownTimeout + time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := link(a.Snapshot(), "good").State; st != "stopped" {
		t.Errorf("good link after shutdown: %s", st)
	}
}

func link(s status.Snapshot, name string) status.LinkStatus {
	for _, l := range s.Links {
		if l.Name == name {
			return l
		}
	}
	return status.LinkStatus{}
}
