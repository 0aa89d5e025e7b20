package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/v4l2/v4l2test"
)

// TestSnapshotShowsStalls: a command sensor configured with a short
// stall_timeout that writes ten frames and then hangs is restarted by the
// hub's watchdog, and the agent's /status document shows the stall (count,
// time, reason) next to the restarts while frames flow again.
func TestSnapshotShowsStalls(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh in PATH:", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "cam.sh")
	frames := filepath.Join(v4l2test.TestdataDir(t), "testsrc-640x480-10frames.mjpeg")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat "+frames+"\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
device: {id: test-device, name: bench, type: TEST}
state_dir: %s
status: {listen: ""}
sensors:
  - name: cam
    kind: command
    command: {argv: [%s], output: mjpeg, rate: 10, first_frame_timeout: 5s, stall_timeout: 300ms}
`, filepath.Join(dir, "state"), script)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Hub().Close)
	sub, err := a.Hub().Subscribe("cam", sensors.SubscribeOptions{Queue: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	cam := func() status.SensorStatus { return a.Snapshot().Sensors[0] }
	agenttest.Eventually(t, "a stall and frames from the restarted command", func() bool {
		for len(sub.C()) > 0 {
			<-sub.C()
		}
		s := cam()
		return s.Stalls >= 1 && s.Samples > 10
	})
	s := cam()
	if s.LastStall == nil || s.LastStall.At.IsZero() || !strings.HasPrefix(s.LastStall.Reason, "no sample for 300ms (after ") ||
		s.Restarts < s.Stalls || !strings.Contains(s.LastError, s.LastStall.Reason) {
		t.Errorf("cam in /status: %+v, last stall %+v", s, s.LastStall)
	}
}
