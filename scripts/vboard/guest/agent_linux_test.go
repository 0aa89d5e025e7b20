//go:build vboard

package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/internal/vboard"
)

// daemonSeconds is how long the whole-agent case runs the daemon.
const daemonSeconds = 60

// TestBoardDaemon runs `edge-agent run` (the cgo build) for a minute with all
// four sensor classes on real drivers at once — a vivid camera, a snd-aloop
// microphone playing a tone, the uhid sensor-hub accelerometer and the USB
// serial board — feeding the four links' fakes (`edge-agent sim`) on
// loopback. No sensor may restart or fail; every sensor that a link keeps
// subscribed must have delivered samples; Edge Impulse must have received
// samples of the accelerometer and the serial board. The agent's RSS and CPU
// time go to the share's results for docs/BENCHMARKS.md.
func TestBoardDaemon(t *testing.T) {
	modprobe(t, "vivid", "n_devs=1", "node_types=0x1", "input_types=0x81")
	modprobe(t, "snd-aloop", "pcm_substreams=1")
	cam := captureNode(t, "vivid")
	accelName := startAccel(t)
	playTone(t, daemonSeconds+30)

	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim := exec.CommandContext(ctx, os.Getenv("VBOARD_AGENT"), "sim", "-config", dir)
	simLog := logFile(t, "sim.log")
	sim.Stdout, sim.Stderr = simLog, simLog
	if err := sim.Start(); err != nil {
		t.Fatalf("start sim: %v", err)
	}
	defer func() { cancel(); _ = sim.Wait() }()
	cfgPath := filepath.Join(dir, "demo-config.yaml")
	waitFor(t, 60*time.Second, "the fakes' config", func() bool { _, err := os.Stat(cfgPath); return err == nil })

	statusURL := rewriteConfig(t, cfgPath, cam, accelName)
	agentLog := logFile(t, "agent.log")
	run := exec.CommandContext(ctx, os.Getenv("VBOARD_AGENT_CGO"), "run", "-config", cfgPath)
	run.Stdout, run.Stderr = agentLog, agentLog
	if err := run.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	defer func() { _ = run.Process.Signal(os.Interrupt); _ = run.Wait() }()
	started := time.Now()

	time.Sleep(daemonSeconds * time.Second)
	st := getStatus(t, statusURL)
	rss, cpu := procFigures(t, run.Process.Pid)
	elapsed := time.Since(started).Seconds()
	fig := fmt.Sprintf("arch=%s seconds=%.0f rss_kib=%d cpu_seconds=%.2f cpu_share=%.3f\n",
		os.Getenv("VBOARD_ARCH"), elapsed, rss, cpu, cpu/elapsed)
	t.Logf("agent: %s", fig)
	_ = os.WriteFile(filepath.Join(os.Getenv("VBOARD_SHARE"), "results", "daemon-figures.txt"), []byte(fig), 0o644)

	want := map[string]bool{"cam": true, "mic": true, "accel": false, "board": false} // true: subscribed throughout
	for _, s := range st.Sensors {
		cont, ok := want[s.Name]
		if !ok {
			continue
		}
		delete(want, s.Name)
		t.Logf("sensor %s: state %s, %d samples, %d restarts, %d subscribers %s", s.Name, s.State, s.Samples, s.Restarts, s.Subscribers, s.LastError)
		if s.Restarts != 0 || s.LastError != "" || s.State == "failed" {
			t.Errorf("sensor %s restarted %d times (state %s): %s", s.Name, s.Restarts, s.State, s.LastError)
		}
		if cont && s.Samples == 0 {
			t.Errorf("sensor %s delivered no samples in %d s", s.Name, daemonSeconds)
		}
	}
	for name := range want {
		t.Errorf("sensor %s is not in /status", name)
	}
	for _, l := range st.Links {
		t.Logf("link %s: %s %s", l.Name, l.State, l.LastError)
		if l.State != "up" {
			t.Errorf("link %s is %s after %d s: %s", l.Name, l.State, daemonSeconds, l.LastError)
		}
	}
	// The Edge Impulse fake asks for a sample every 15 s, in turn from each
	// sensor the link offers (accel, board): two delivered means both were read.
	if ei := findLink(st, "edgeimpulse"); ei == nil || ei.Spool == nil || ei.Spool.Delivered < 2 {
		t.Errorf("Edge Impulse received fewer than 2 samples: %+v", ei)
	}
	if t.Failed() {
		b, _ := os.ReadFile(agentLog.Name())
		t.Logf("agent log (tail):\n%s", tail(string(b), 4000))
	}
}

// rewriteConfig swaps the sim's synthetic sensors for the board's real ones
// and returns the status URL.
func rewriteConfig(t *testing.T, path, cam, accel string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var video any
	for _, s := range cfg["sensors"].([]any) {
		if m := s.(map[string]any); m["name"] == "video" {
			video = m // vivid has no H.264: RTM keeps the synthetic stream
		}
	}
	cfg["sensors"] = []any{
		map[string]any{"name": "cam", "kind": "v4l2", "v4l2": map[string]any{"device": cam, "format": "yuyv", "width": 320, "height": 180, "fps": 5}},
		map[string]any{"name": "mic", "kind": "microphone", "microphone": map[string]any{"device": "hw:Loopback,1", "sample_rate": 16000}},
		map[string]any{"name": "accel", "kind": "iio", "iio": map[string]any{"device": accel, "frequencies": []any{50}}},
		map[string]any{"name": "board", "kind": "serial", "serial": map[string]any{"port": "/dev/ttyUSB0", "baud": 115200, "frequency": 100, "axes": []any{"ax", "ay", "az"}}},
		video,
	}
	for _, l := range cfg["links"].([]any) {
		m := l.(map[string]any)
		if m["kind"] == "edgeimpulse" {
			m["edgeimpulse"].(map[string]any)["sensors"] = []any{"accel", "board"}
		}
	}
	// The demo's model (a copy of the sim's binary) and its rule are left
	// out: this case is about the drivers, and its CPU figure is compared
	// with runs that had no model.
	delete(cfg, "inference")
	delete(cfg, "rules")
	cfg["log"] = map[string]any{"level": "info", "format": "text"}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return "http://" + cfg["status"].(map[string]any)["listen"].(string) + "/status"
}

// status is the part of the agent's /status this case reads.
type status struct {
	Links   []linkStatus   `json:"links"`
	Sensors []sensorStatus `json:"sensors"`
}

type linkStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
	Spool     *struct {
		Delivered uint64 `json:"delivered"`
	} `json:"spool"`
}

type sensorStatus struct {
	Name        string `json:"name"`
	State       string `json:"state"`
	Samples     uint64 `json:"samples"`
	Restarts    uint64 `json:"restarts"`
	Subscribers int    `json:"subscribers"`
	LastError   string `json:"last_error"`
	Stalls      uint64 `json:"stalls"`
	LastStall   *struct {
		At     time.Time `json:"at"`
		Reason string    `json:"reason"`
	} `json:"last_stall"`
}

func findLink(st status, name string) *linkStatus {
	for i := range st.Links {
		if st.Links[i].Name == name {
			return &st.Links[i]
		}
	}
	return nil
}

func getStatus(t *testing.T, url string) status {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var st status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decode /status: %v", err)
	}
	return st
}

// procFigures reads a process's resident set (KiB) and CPU time (s).
func procFigures(t *testing.T, pid int) (rssKiB int, cpu float64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			rssKiB, _ = strconv.Atoi(f[1])
		}
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the whole line, in clock ticks (100 Hz here).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return rssKiB, (ut + st) / 100
}

// playTone writes a 440 Hz tone of secs seconds and plays it into the
// loopback card's playback side until the test ends.
func playTone(t *testing.T, secs int) {
	t.Helper()
	wav := filepath.Join(t.TempDir(), "tone.wav")
	if err := os.WriteFile(wav, vboard.ToneWAV(440, 12000, 16000, secs), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "aplay", "-q", "-D", "hw:Loopback,0,0", wav)
	cmd.Stderr = logFile(t, "aplay.log")
	if err := cmd.Start(); err != nil {
		t.Fatalf("aplay: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
}

// modprobe loads a module for the test and removes it, with what it pulled
// in, afterwards.
func modprobe(t *testing.T, mod string, params ...string) { vboard.Modprobe(t, mod, params...) }

// captureNode is the /dev/videoN whose driver name is drv.
func captureNode(t *testing.T, drv string) string {
	t.Helper()
	var node string
	waitFor(t, 10*time.Second, drv+"'s video node", func() bool {
		names, _ := filepath.Glob("/sys/class/video4linux/video*/name")
		for _, n := range names {
			b, _ := os.ReadFile(n)
			if strings.Contains(string(b), drv) {
				node = "/dev/" + filepath.Base(filepath.Dir(n))
				return true
			}
		}
		return false
	})
	return node
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logFile is a file in the share's results, so a failed case leaves the
// processes' output behind for the person reading it.
func logFile(t *testing.T, name string) *os.File {
	t.Helper()
	path := filepath.Join(os.Getenv("VBOARD_SHARE"), "results", "guest-"+name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
