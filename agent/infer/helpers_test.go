package infer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

// fakeBinary is the fake model (internal/fakemodel) built once for the
// package's tests; "" when there is no Go toolchain to build it.
var fakeBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "infer-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if gobin := goTool(); gobin != "" {
		out := filepath.Join(dir, "fakemodel")
		cmd := exec.Command(gobin, "build", "-o", out, "./internal/fakemodel")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build the fake model: %v\n%s", err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		fakeBinary = out
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// fakeConfig is the fake model's configuration (internal/fakemodel.Config).
type fakeConfig struct {
	Project      map[string]any `json:"project"`
	Params       map[string]any `json:"model_parameters"`
	Split        []float64      `json:"split,omitempty"`
	Score        float64        `json:"score,omitempty"`
	Log          string         `json:"log,omitempty"`
	CrashAfter   int            `json:"crash_after,omitempty"`
	HangAfter    int            `json:"hang_after,omitempty"`
	GarbageAfter int            `json:"garbage_after,omitempty"`
	RefuseAfter  int            `json:"refuse_after,omitempty"`
	DelayMS      int            `json:"delay_ms,omitempty"`
	FailStart    bool           `json:"fail_start,omitempty"`
	// IgnoreSignals: only SIGKILL stops the model; Child: it starts a
	// sleeping child in its process group.
	IgnoreSignals bool `json:"ignore_signals,omitempty"`
	Child         bool `json:"child,omitempty"`
}

// fakeModel returns the bytes of a fake model configured by cfg: the fake
// binary with cfg appended (the fake reads its own tail).
func fakeModel(t testing.TB, cfg fakeConfig) []byte {
	t.Helper()
	if fakeBinary == "" {
		t.Skip("no go toolchain (go) to build the fake model")
	}
	bin, err := os.ReadFile(fakeBinary)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.Write(bin)
	b.Write(js)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	b.Write(n[:])
	b.WriteString("FAKEEIM1")
	return b.Bytes()
}

// writeModel writes a fake model to dir/name, executable.
func writeModel(t testing.TB, dir, name string, cfg fakeConfig) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, fakeModel(t, cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func project() map[string]any {
	return map[string]any{"id": 42, "owner": "tester", "name": "fake project", "deploy_version": 7}
}

// Parameters of the three model kinds the tests use.
func motionParams(axes, rows int, freq float64, labels ...string) map[string]any {
	return map[string]any{"input_features_count": axes * rows, "sensor": SensorAccelerometer, "frequency": freq,
		"interval_ms": 1000 / freq, "axis_count": axes, "label_count": len(labels), "labels": labels,
		"model_type": "classification", "has_anomaly": 0}
}

func audioParams(window, slice int, rate float64, continuous bool, labels ...string) map[string]any {
	return map[string]any{"input_features_count": window, "sensor": SensorMicrophone, "frequency": rate,
		"interval_ms": 1000 / rate, "axis_count": 1, "label_count": len(labels), "labels": labels,
		"model_type": "classification", "slice_size": slice, "use_continuous_mode": continuous, "has_anomaly": 0}
}

func imageParams(w, h, channels int, mode, modelType string, labels ...string) map[string]any {
	return map[string]any{"input_features_count": w * h, "sensor": SensorCamera, "frequency": 0, "interval_ms": 1,
		"axis_count": 1, "image_input_width": w, "image_input_height": h, "image_input_frames": 1,
		"image_channel_count": channels, "image_resize_mode": mode, "label_count": len(labels), "labels": labels,
		"model_type": modelType, "has_anomaly": 0}
}

// logged reads the fake's feature log: one entry per request.
type loggedRequest struct {
	Continuous bool      `json:"continuous"`
	Features   []float64 `json:"features"`
}

func readLog(t testing.TB, path string) []loggedRequest {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []loggedRequest
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r loggedRequest
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

var (
	jsonMarshal   = json.Marshal
	jsonUnmarshal = json.Unmarshal
)

func isInputErr(err error) bool { return errors.Is(err, errInput) }
