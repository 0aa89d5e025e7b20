package infer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/infer/infertest"
)

// fakeBinary is the fake model built once for the package's tests; ""
// when there is no Go toolchain to build it.
var fakeBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "infer-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if fakeBinary, err = infertest.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
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

type fakeConfig = infertest.Config

// fakeModel returns the bytes of a fake model configured by cfg.
func fakeModel(t testing.TB, cfg fakeConfig) []byte {
	t.Helper()
	if fakeBinary == "" {
		t.Skip("no go toolchain (go) to build the fake model")
	}
	return infertest.Model(t, fakeBinary, cfg)
}

// writeModel writes a fake model to dir/name, executable.
func writeModel(t testing.TB, dir, name string, cfg fakeConfig) string {
	t.Helper()
	if fakeBinary == "" {
		t.Skip("no go toolchain (go) to build the fake model")
	}
	return infertest.WriteModel(t, fakeBinary, dir, name, cfg)
}

func project() map[string]any { return infertest.Project(7) }

var (
	motionParams = infertest.MotionParams
	audioParams  = infertest.AudioParams
	imageParams  = infertest.ImageParams
)

// loggedRequest is one request in the fake's feature log.
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
