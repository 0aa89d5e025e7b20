package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/infer/infertest"
)

func runInferCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = dispatch(context.Background(), append([]string{"infer"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// TestInferPrintsResults is the done-when: `edge-agent infer -model FILE
// -sensor NAME` classifies a configured sensor and prints live results.
func TestInferPrintsResults(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	bin := infertest.Fake(t)
	cfg := writeConfig(t, "  - {name: accel, kind: synthetic, synthetic: {signal: motion, frequencies: [100]}}\n")
	model := infertest.WriteModel(t, bin, t.TempDir(), "m.eim", infertest.Config{Project: infertest.Project(3),
		Params: infertest.MotionParams(3, 10, 100, "idle", "wave"), Split: []float64{-100}})
	code, out, errOut := runInferCmd(t, "-config", cfg, "-sensor", "accel", "-model", model, "-n", "3")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !strings.Contains(l, "  wave 0.90  (idle 0.10)  dsp 1 ms, classification 2 ms") {
			t.Fatalf("line %q", l)
		}
	}
	if !strings.Contains(errOut, "model tester / fake project v3: classification, accelerometer input, labels idle, wave; reading accel") {
		t.Fatalf("stderr %q", errOut)
	}

	code, out, _ = runInferCmd(t, "-config", cfg, "-sensor", "accel", "-model", model, "-n", "1", "-json")
	var line struct {
		Scores map[string]float64 `json:"scores"`
		Answer struct {
			Result struct {
				Classification map[string]float64 `json:"classification"`
			} `json:"result"`
		} `json:"answer"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &line) != nil || line.Scores["wave"] != 0.9 || line.Answer.Result.Classification["wave"] != 0.9 {
		t.Fatalf("-json: exit %d, %q", code, out)
	}
}

func TestInferFailures(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	bin := infertest.Fake(t)
	cfg := writeConfig(t, "  - {name: accel, kind: synthetic, synthetic: {signal: motion, frequencies: [100]}}\n"+
		"  - {name: mic, kind: synthetic, synthetic: {signal: audio}}\n")
	dir := t.TempDir()
	motion := infertest.WriteModel(t, bin, dir, "motion.eim", infertest.Config{Project: infertest.Project(1),
		Params: infertest.MotionParams(3, 10, 100, "a")})
	crashing := infertest.WriteModel(t, bin, dir, "crash.eim", infertest.Config{Project: infertest.Project(1),
		Params: infertest.MotionParams(3, 10, 100, "a"), CrashAfter: 1})
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model", []string{"-sensor", "accel"}, inferUsage, "usage"},
		{"unknown sensor", []string{"-sensor", "nope", "-model", motion}, inferFailed, `no sensor "nope"`},
		{"missing model", []string{"-sensor", "accel", "-model", filepath.Join(dir, "none.eim")}, inferFailed, "no such file"},
		{"wrong sensor for the model", []string{"-sensor", "mic", "-model", motion}, inferFailed, "needs a motion sensor"},
		{"a crashing model", []string{"-sensor", "accel", "-model", crashing}, inferFailed, "crashing as configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runInferCmd(t, append([]string{"-config", cfg}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d with %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}
