//go:build vboard

package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// camScript is the command sensor of TestBoardCommandStall. Each start is
// numbered in $dir/runs. The first start never writes a frame (rpicam-vid
// stuck opening the camera); the second writes ten and then keeps running
// without writing (an encoder whose camera hung); from the third on it
// writes ten frames a second. A hanging start records the pid of the
// process it waits for in $dir/hang.N.
const camScript = `#!/bin/sh
dir=%s
n=$(($(cat $dir/runs 2>/dev/null || echo 0) + 1)); echo $n > $dir/runs
case $n in
1) sleep 600 & echo $! > $dir/hang.1; wait ;;
2) cat $dir/frames.mjpeg; sleep 600 & echo $! > $dir/hang.2; wait ;;
*) while :; do cat $dir/frames.mjpeg; sleep 1; done ;;
esac
`

// TestBoardCommandStall runs `edge-agent run` with one command sensor that
// the camera-server link streams, and a command that first never writes and
// then stops writing. The hub's watchdog must stop it at first_frame_timeout,
// then at stall_timeout, with the process group gone each time, and frames
// must flow from the third start on; /status shows each stall's reason as it
// happens, the count and last_stall, and /metrics the stall and restart
// counters.
func TestBoardCommandStall(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "frames.mjpeg"), jpegFrames(t, 10), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "cam.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(camScript, dir)), 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simDir := filepath.Join(dir, "sim")
	sim := exec.CommandContext(ctx, os.Getenv("VBOARD_AGENT"), "sim", "-config", simDir)
	simLog := logFile(t, "stall-sim.log")
	sim.Stdout, sim.Stderr = simLog, simLog
	if err := sim.Start(); err != nil {
		t.Fatalf("start sim: %v", err)
	}
	defer func() { cancel(); _ = sim.Wait() }()
	cfgPath := filepath.Join(simDir, "demo-config.yaml")
	waitFor(t, 60*time.Second, "the fakes' config", func() bool { _, err := os.Stat(cfgPath); return err == nil })
	base := commandCamConfig(t, cfgPath, script)

	agentLog := logFile(t, "stall-agent.log")
	run := exec.CommandContext(ctx, os.Getenv("VBOARD_AGENT"), "run", "-config", cfgPath)
	run.Stdout, run.Stderr = agentLog, agentLog
	if err := run.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	defer func() { _ = run.Process.Signal(os.Interrupt); _ = run.Wait() }()
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(agentLog.Name())
			t.Logf("agent log (tail):\n%s", tail(string(b), 4000))
		}
	}()

	// Watch /status until the second stall, noting every reason shown.
	var cam sensorStatus
	var reasons []string
	waitFor(t, 120*time.Second, "two stalls of the command sensor", func() bool {
		st, err := fetchStatus(base + "/status")
		if err != nil {
			return false
		}
		if c := findSensor(st, "cam"); c != nil {
			cam = *c
			if ls := cam.LastStall; ls != nil && (len(reasons) == 0 || reasons[len(reasons)-1] != ls.Reason) {
				reasons = append(reasons, ls.Reason)
			}
		}
		return cam.Stalls >= 2
	})
	t.Logf("cam after two stalls: %+v, reasons %q", cam, reasons)
	if len(reasons) != 2 || reasons[0] != "no sample in the first 4s" || !strings.HasPrefix(reasons[1], "no sample for 3s (after ") {
		t.Errorf("stall reasons seen %q, want no first frame within 4s, then none for 3s", reasons)
	}
	for n := 1; n <= 2; n++ {
		checkGone(t, filepath.Join(dir, fmt.Sprintf("hang.%d", n)))
	}

	// Frames flow again, with no further stall.
	from := cam.Samples
	waitFor(t, 60*time.Second, "frames after the restarts", func() bool {
		st, err := fetchStatus(base + "/status")
		if err != nil {
			return false
		}
		c := findSensor(st, "cam")
		if c != nil {
			cam = *c
		}
		return c != nil && c.Samples >= from+30
	})
	if cam.State != "running" || cam.Stalls != 2 || cam.Restarts < 2 || cam.LastStall == nil || cam.LastStall.At.IsZero() {
		t.Errorf("cam once frames flow again: %+v", cam)
	}
	metrics := fetchText(t, base+"/metrics")
	for _, want := range []string{
		`edge_agent_sensor_stalls_total{kind="command",sensor="cam"} 2`,
		`edge_agent_sensor_restarts_total{kind="command",sensor="cam"} `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// commandCamConfig rewrites the sim's config to one sensor, cam, run by
// script with short watchdog timeouts, and the camera-server link alone
// (it streams cam while connected). It returns the status server's base URL.
func commandCamConfig(t *testing.T, path, script string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	cfg["sensors"] = []any{map[string]any{"name": "cam", "kind": "command", "command": map[string]any{
		"argv": []any{script}, "output": "mjpeg", "width": 64, "height": 48, "rate": 10,
		"first_frame_timeout": "4s", "stall_timeout": "3s"}}}
	var links []any
	for _, l := range cfg["links"].([]any) {
		if l.(map[string]any)["kind"] == "camserver" {
			links = append(links, l)
		}
	}
	if len(links) != 1 {
		t.Fatalf("the sim's config has %d camserver links", len(links))
	}
	cfg["links"] = links
	delete(cfg, "inference") // the demo's model and rule need the synthetic camera and every link
	delete(cfg, "rules")
	cfg["log"] = map[string]any{"level": "info", "format": "text"}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return "http://" + cfg["status"].(map[string]any)["listen"].(string)
}

// jpegFrames is n small JPEGs back to back, as an MJPEG encoder writes them.
func jpegFrames(t *testing.T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, 64, 48))
		for p := range img.Pix {
			img.Pix[p] = uint8(i * 20)
		}
		img.Set(i, i, color.White)
		if err := jpeg.Encode(&buf, img, nil); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// checkGone waits for the process whose pid is in file to be gone: the hub
// stopped the command's whole process group.
func checkGone(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("no pid of a hanging start: %v", err)
		return
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	alive := func() bool {
		s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(s))
		return err == nil && len(f) > 2 && f[2] != "Z" && syscall.Kill(pid, 0) == nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive() {
		if time.Now().After(deadline) {
			t.Errorf("process %d (%s) survived its stall", pid, filepath.Base(file))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func findSensor(st status, name string) *sensorStatus {
	for i := range st.Sensors {
		if st.Sensors[i].Name == name {
			return &st.Sensors[i]
		}
	}
	return nil
}

// fetchStatus is getStatus for a poll loop: an error (the agent not up
// yet) is returned, not fatal.
func fetchStatus(url string) (status, error) {
	var st status
	resp, err := http.Get(url)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func fetchText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}
