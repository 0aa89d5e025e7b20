// Package infertest builds the fake .eim model (agent/infer/internal/
// fakemodel) for tests of the runner, the agent and the CLI: a Go program
// that speaks the model protocol (docs/protocols/eim.md §10), configured
// by a trailer appended to its own executable. Only tests import it.
package infertest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Sensor types of model_parameters.sensor.
const (
	SensorMicrophone    = 1
	SensorAccelerometer = 2
	SensorCamera        = 3
)

// Config is the fake model's behaviour (fakemodel.Config).
type Config struct {
	Project map[string]any `json:"project"`
	Params  map[string]any `json:"model_parameters"`
	// Split holds ascending boundaries: the label is the number of them at
	// or below the mean of the features.
	Split []float64 `json:"split,omitempty"`
	Score float64   `json:"score,omitempty"` // the chosen label's score (0.9)
	// Log receives every request's features, one JSON line each.
	Log string `json:"log,omitempty"`
	// Faults, counted in classify requests from 1 (0: never).
	CrashAfter   int  `json:"crash_after,omitempty"`
	HangAfter    int  `json:"hang_after,omitempty"`
	GarbageAfter int  `json:"garbage_after,omitempty"`
	RefuseAfter  int  `json:"refuse_after,omitempty"`
	DelayMS      int  `json:"delay_ms,omitempty"` // after logging, before answering
	FailStart    bool `json:"fail_start,omitempty"`
	// IgnoreSignals: only SIGKILL stops the model; Child: it starts a
	// sleeping child in its process group.
	IgnoreSignals bool `json:"ignore_signals,omitempty"`
	Child         bool `json:"child,omitempty"`
}

// GoTool is the go command, or "" when there is none.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// Build compiles the fake model to dir/fakemodel. It returns "" and no
// error when there is no Go toolchain.
func Build(dir string) (string, error) {
	gobin := GoTool()
	if gobin == "" {
		return "", nil
	}
	out := filepath.Join(dir, "fakemodel")
	cmd := exec.Command(gobin, "build", "-o", out, "github.com/edge-agent/edge-agent/agent/infer/internal/fakemodel")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the fake model: %v\n%s", err, b)
	}
	return out, nil
}

// Fake builds the fake model for t (in its temporary directory) and
// returns its path; t is skipped when there is no Go toolchain.
func Fake(t testing.TB) string {
	t.Helper()
	skipEmulated(t)
	bin, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bin == "" {
		t.Skip("no go toolchain (go) to build the fake model")
	}
	return bin
}

// skipEmulated skips a test that would start the fake model under
// qemu-user (scripts/test-arm.sh sets EDGE_AGENT_EMULATED): the model is a
// second program of the target architecture, and the runner starts it
// directly, as on a board, which the host kernel cannot do without a
// binfmt_misc registration. The runner's tests run natively in make test.
func skipEmulated(t testing.TB) {
	t.Helper()
	if os.Getenv("EDGE_AGENT_EMULATED") != "" {
		t.Skip("under qemu-user (EDGE_AGENT_EMULATED is set): the fake .eim model is an ARM program the runner starts directly, which the host kernel cannot do without binfmt_misc; these tests run natively in make test")
	}
}

// Model returns the bytes of a fake model: the binary bin with cfg
// appended.
func Model(t testing.TB, bin string, cfg Config) []byte {
	t.Helper()
	skipEmulated(t)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(b)
	buf.Write(js)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	buf.Write(n[:])
	buf.WriteString("FAKEEIM1")
	return buf.Bytes()
}

// WriteModel writes a fake model to dir/name, executable, and returns its
// path.
func WriteModel(t testing.TB, bin, dir, name string, cfg Config) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, Model(t, bin, cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Project is a project object for a hello.
func Project(version int) map[string]any {
	return map[string]any{"id": 42, "owner": "tester", "name": "fake project", "deploy_version": version}
}

// MotionParams are a motion classifier's parameters: axes × rows features
// at freq Hz.
func MotionParams(axes, rows int, freq float64, labels ...string) map[string]any {
	return map[string]any{"input_features_count": axes * rows, "sensor": SensorAccelerometer, "frequency": freq,
		"interval_ms": 1000 / freq, "axis_count": axes, "label_count": len(labels), "labels": labels,
		"model_type": "classification", "has_anomaly": 0}
}

// AudioParams are an audio classifier's: a window of samples at rate Hz,
// in slices of slice in continuous mode.
func AudioParams(window, slice int, rate float64, continuous bool, labels ...string) map[string]any {
	return map[string]any{"input_features_count": window, "sensor": SensorMicrophone, "frequency": rate,
		"interval_ms": 1000 / rate, "axis_count": 1, "label_count": len(labels), "labels": labels,
		"model_type": "classification", "slice_size": slice, "use_continuous_mode": continuous, "has_anomaly": 0}
}

// ImageParams are an image model's: w×h pixels, 3 (RGB) or 1 (gray)
// channels, the resize mode and the model type.
func ImageParams(w, h, channels int, mode, modelType string, labels ...string) map[string]any {
	return map[string]any{"input_features_count": w * h, "sensor": SensorCamera, "frequency": 0, "interval_ms": 1,
		"axis_count": 1, "image_input_width": w, "image_input_height": h, "image_input_frames": 1,
		"image_channel_count": channels, "image_resize_mode": mode, "label_count": len(labels), "labels": labels,
		"model_type": modelType, "has_anomaly": 0}
}
