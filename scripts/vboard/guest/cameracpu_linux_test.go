//go:build vboard

package guest

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The camera CPU benchmark's shape: benchRounds rounds of the four runs
// below, each measured over benchWindow after benchWarm of steady state.
const (
	benchRounds = 4
	benchWarm   = 3 * time.Second
	benchWindow = 12 * time.Second
	benchWidth  = 640
	benchHeight = 480
	benchFPS    = 10
)

// benchMode is one kind of run: which agent binary, and whether its
// camserver link streams the camera (every frame YUYV → JPEG in the v4l2
// source) or leaves it unsubscribed (the idle baseline: device closed).
type benchMode struct {
	name   string
	bin    string
	stream bool
}

// benchRun is what one run measured over its window.
type benchRun struct {
	cpu     float64 // agent CPU seconds (user+system, every thread)
	seconds float64 // wall-clock seconds
	frames  uint64  // camera frames delivered (the sensor's sample count)
}

// TestBoardCameraCPU (issue 18) measures the whole agent's CPU per camera
// frame with libjpeg-turbo (the cgo agent) and with Go's image/jpeg (the
// pure-Go agent) on vivid's YUYV 640×480 at 10 fps, in one boot: runs of
// each agent streaming the camera to the camserver fake alternate with idle
// runs of the same agent (camera unsubscribed), and each streaming run's CPU
// less its agent's idle share is divided by its frames. TCG emulates the
// CPU, so only the ratio within the boot means anything for a real board.
// It is a benchmark: skipped unless VBOARD_BENCH is set (make test-board
// VBOARD_BENCH=1 …); when it runs, a failed run (an agent that does not
// start, a camera that fails or delivers nothing, the wrong format) fails
// it. Figures go to the share's results/camera-cpu.txt.
func TestBoardCameraCPU(t *testing.T) {
	if os.Getenv("VBOARD_BENCH") == "" {
		t.Skip("a benchmark: runs with VBOARD_BENCH=1 (scripts/vboard/README.md)")
	}
	cgoBin, goBin := os.Getenv("VBOARD_AGENT_CGO"), os.Getenv("VBOARD_AGENT")
	if why := turboMissing(cgoBin); why != "" {
		t.Skipf("%s has no libjpeg-turbo to measure: %s", cgoBin, why)
	}
	modprobe(t, "vivid", "n_devs=1", "node_types=0x1", "num_inputs=1", "input_types=0") // one webcam input: YUYV, 640x480 at 1/10 s
	cam := captureNode(t, "vivid")
	streamCfg, idleCfg, statusURL := benchConfigs(t, cam)

	modes := []benchMode{
		{"cgo", cgoBin, true}, {"go", goBin, true},
		{"cgo-idle", cgoBin, false}, {"go-idle", goBin, false},
	}
	runs := map[string][]benchRun{}
	for r := range benchRounds {
		order := slices.Clone(modes)
		if r%2 == 1 { // the pure-Go agent first in every other round
			order[0], order[1], order[2], order[3] = order[1], order[0], order[3], order[2]
		}
		for _, m := range order {
			cfg := idleCfg
			if m.stream {
				cfg = streamCfg
			}
			run := measureAgent(t, m, cfg, statusURL)
			t.Logf("round %d %-8s cpu %.2f s over %.1f s, %d frames", r+1, m.name, run.cpu, run.seconds, run.frames)
			runs[m.name] = append(runs[m.name], run)
		}
	}
	report(t, runs)
}

// turboMissing says why bin's camjpeg is not libjpeg-turbo (built without
// cgo, or with -tags nolibjpeg: scripts/vboard/run.sh falls back to it when
// it finds no libjpeg for the guest), or "" when it is.
func turboMissing(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Sprintf("build info: %v", err)
	}
	for _, s := range bi.Settings {
		switch {
		case s.Key == "CGO_ENABLED" && s.Value != "1":
			return "built with CGO_ENABLED=" + s.Value
		case s.Key == "-tags" && slices.Contains(strings.Split(s.Value, ","), "nolibjpeg"):
			return "built with -tags " + s.Value
		}
	}
	return ""
}

// benchConfigs starts `edge-agent sim` for the test and derives two configs
// from its demo config: one sensor, cam (vivid, YUYV 640x480 at 10 fps), and
// the camserver link alone, streaming cam (stream.yaml) or with the stream
// on manual start, so nothing subscribes to cam (idle.yaml). The demo's
// model and rule are left out, as in the other whole-agent cases. It returns
// both paths and the agent's /status URL.
func benchConfigs(t *testing.T, cam string) (stream, idle, statusURL string) {
	t.Helper()
	dir := t.TempDir()
	sim := exec.Command(os.Getenv("VBOARD_AGENT"), "sim", "-config", dir)
	simLog := logFile(t, "cameracpu-sim.log")
	sim.Stdout, sim.Stderr = simLog, simLog
	if err := sim.Start(); err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { stopProcess(t, sim, "sim") })
	demo := filepath.Join(dir, "demo-config.yaml")
	waitFor(t, 60*time.Second, "the fakes' config", func() bool { _, err := os.Stat(demo); return err == nil })
	b, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, streaming bool) string {
		var cfg map[string]any
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			t.Fatalf("parse %s: %v", demo, err)
		}
		cfg["sensors"] = []any{map[string]any{"name": "cam", "kind": "v4l2", "v4l2": map[string]any{
			"device": cam, "format": "yuyv", "width": benchWidth, "height": benchHeight, "fps": benchFPS}}}
		var links []any
		for _, l := range cfg["links"].([]any) {
			if m := l.(map[string]any); m["kind"] == "camserver" {
				st := m["camserver"].(map[string]any)["stream"].(map[string]any)
				st["sensor"], st["start"] = "cam", "auto"
				if !streaming {
					st["start"] = "manual"
				}
				links = append(links, m)
			}
		}
		if len(links) != 1 {
			t.Fatalf("the sim's config has %d camserver links", len(links))
		}
		cfg["links"] = links
		delete(cfg, "inference")
		delete(cfg, "rules")
		cfg["log"] = map[string]any{"level": "info", "format": "text"}
		statusURL = "http://" + cfg["status"].(map[string]any)["listen"].(string) + "/status"
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("stream.yaml", true), write("idle.yaml", false), statusURL
}

// measureAgent runs `bin run -config cfg` until it is in the mode's steady
// state (link up; cam delivering, or idle), lets it settle for benchWarm,
// measures it over benchWindow and stops it. Anything that is not the
// steady state — a camera that restarted or failed, a stream that is not
// on, frames in an idle run, a format other than YUYV 640x480 — fails the
// test.
func measureAgent(t *testing.T, m benchMode, cfg, statusURL string) benchRun {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "agent.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	agent := exec.Command(m.bin, "run", "-config", cfg)
	agent.Stdout, agent.Stderr = lf, lf
	if err := agent.Start(); err != nil {
		t.Fatalf("%s: start agent: %v", m.name, err)
	}
	defer func() {
		stopProcess(t, agent, m.name+" agent")
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s agent log (tail):\n%s", m.name, tail(string(b), 3000))
		}
	}()
	var st benchStatus
	waitFor(t, 90*time.Second, m.name+"'s steady state", func() bool {
		var err error
		st, err = fetchBenchStatus(statusURL)
		return err == nil && st.ready(m.stream)
	})
	time.Sleep(benchWarm)

	st0, at0 := mustBenchStatus(t, statusURL), time.Now()
	_, cpu0 := procFigures(t, agent.Process.Pid)
	time.Sleep(benchWindow)
	_, cpu1 := procFigures(t, agent.Process.Pid)
	st1, at1 := mustBenchStatus(t, statusURL), time.Now()
	run := benchRun{cpu: cpu1 - cpu0, seconds: at1.Sub(at0).Seconds(), frames: st1.cam().Samples - st0.cam().Samples}

	if err := st1.check(m.stream); err != nil {
		t.Fatalf("%s after the window: %v", m.name, err)
	}
	if m.stream && run.frames == 0 {
		t.Fatalf("%s: no camera frame in %s", m.name, benchWindow)
	}
	if !m.stream && st1.cam().Samples != 0 {
		t.Fatalf("%s: the unsubscribed camera delivered %d frames", m.name, st1.cam().Samples)
	}
	if m.stream {
		want := fmt.Sprintf(`format="YUYV %dx%d@%d"`, benchWidth, benchHeight, benchFPS)
		if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), want) {
			t.Fatalf("%s: the camera did not open as %s", m.name, want)
		}
	}
	return run
}

// stopProcess interrupts p and waits for it to exit, killing it after 30 s;
// an exit other than a clean one is an error of the test.
func stopProcess(t *testing.T, p *exec.Cmd, what string) {
	t.Helper()
	_ = p.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited after SIGINT: %v", what, err)
		}
	case <-time.After(30 * time.Second):
		_ = p.Process.Kill()
		<-done
		t.Errorf("%s did not exit within 30 s of SIGINT", what)
	}
}

// report computes and logs the figures and writes them to the share.
// Each agent's idle share (median CPU s/s of its idle runs) is taken off
// each of its streaming runs, what is left divided by the run's frames.
func report(t *testing.T, runs map[string][]benchRun) {
	t.Helper()
	perFrame := map[string][]float64{}
	idle := map[string]float64{}
	for _, a := range []string{"cgo", "go"} {
		var shares []float64
		for _, r := range runs[a+"-idle"] {
			shares = append(shares, r.cpu/r.seconds)
		}
		idle[a] = median(shares)
		for _, r := range runs[a] {
			perFrame[a] = append(perFrame[a], 1000*(r.cpu-idle[a]*r.seconds)/float64(r.frames))
		}
	}
	var ratios []float64
	for i := range perFrame["cgo"] {
		ratios = append(ratios, perFrame["cgo"][i]/perFrame["go"][i])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "arch=%s camera=vivid YUYV %dx%d@%d rounds=%d window=%s\n",
		os.Getenv("VBOARD_ARCH"), benchWidth, benchHeight, benchFPS, benchRounds, benchWindow)
	for _, a := range []string{"cgo", "go"} {
		var fps []float64
		for _, r := range runs[a] {
			fps = append(fps, float64(r.frames)/r.seconds)
		}
		fmt.Fprintf(&b, "%-3s ms/frame median %.2f (%s), idle share %.3f (%s), frames/s %s\n", a,
			median(perFrame[a]), spread(perFrame[a], "%.2f"), idle[a], spread(idleShares(runs[a+"-idle"]), "%.3f"), spread(fps, "%.1f"))
	}
	fmt.Fprintf(&b, "ratio cgo/go: %.3f (medians), per round %s\n", median(perFrame["cgo"])/median(perFrame["go"]), spread(ratios, "%.3f"))
	t.Logf("camera CPU:\n%s", b.String())
	_ = os.WriteFile(filepath.Join(os.Getenv("VBOARD_SHARE"), "results", "camera-cpu.txt"), []byte(b.String()), 0o644)
}

func idleShares(runs []benchRun) []float64 {
	var s []float64
	for _, r := range runs {
		s = append(s, r.cpu/r.seconds)
	}
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// spread is "min–max: a b c …" of v in the given format.
func spread(v []float64, f string) string {
	if len(v) == 0 {
		return "none"
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf(f, x)
	}
	return fmt.Sprintf(f+"–"+f+": %s", slices.Min(v), slices.Max(v), strings.Join(parts, " "))
}

// benchStatus is the part of /status this case reads: the camera and the
// camserver link with its stream detail.
type benchStatus struct {
	Sensors []sensorStatus `json:"sensors"`
	Links   []struct {
		Name      string            `json:"name"`
		State     string            `json:"state"`
		LastError string            `json:"last_error"`
		Details   map[string]string `json:"details"`
	} `json:"links"`
}

func (s benchStatus) cam() sensorStatus {
	for _, c := range s.Sensors {
		if c.Name == "cam" {
			return c
		}
	}
	return sensorStatus{}
}

// ready: the link is up, and cam has delivered frames (streaming) or
// stays closed (idle).
func (s benchStatus) ready(streaming bool) bool {
	if len(s.Links) != 1 || s.Links[0].State != "up" {
		return false
	}
	if streaming {
		return s.cam().Samples > 0 && s.Links[0].Details["stream"] == "on"
	}
	return s.cam().State == "idle"
}

// check reports what is wrong with a run's final status.
func (s benchStatus) check(streaming bool) error {
	c := s.cam()
	switch {
	case c.Name == "":
		return fmt.Errorf("no sensor cam in /status")
	case c.Restarts != 0 || c.LastError != "" || c.Stalls != 0:
		return fmt.Errorf("cam restarted %d times (%d stalls): %s", c.Restarts, c.Stalls, c.LastError)
	case len(s.Links) != 1 || s.Links[0].State != "up":
		return fmt.Errorf("links %+v, want the camserver link up", s.Links)
	case streaming && (c.State != "running" || s.Links[0].Details["stream"] != "on"):
		return fmt.Errorf("cam %s, stream %q: want running and on", c.State, s.Links[0].Details["stream"])
	case !streaming && (c.State != "idle" || c.Subscribers != 0):
		return fmt.Errorf("cam %s with %d subscribers: want idle", c.State, c.Subscribers)
	}
	return nil
}

func fetchBenchStatus(url string) (benchStatus, error) {
	var st benchStatus
	resp, err := http.Get(url)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func mustBenchStatus(t *testing.T, url string) benchStatus {
	t.Helper()
	st, err := fetchBenchStatus(url)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}
