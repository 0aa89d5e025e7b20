package infer

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func startFake(t *testing.T, cfg fakeConfig, o ProcessOptions) *Process {
	t.Helper()
	path := writeModel(t, t.TempDir(), "model.eim", cfg)
	if o.RuntimeDir == "" {
		o.RuntimeDir = t.TempDir()
	}
	p, err := Start(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func ones(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestProcessHelloAndClassify(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	p := startFake(t, fakeConfig{Project: project(), Params: motionParams(3, 4, 50, "still", "moving"),
		Split: []float64{5}, Log: log}, ProcessOptions{})
	m := p.Model()
	if m.Project.ID != 42 || m.Project.DeployVersion != 7 || m.Params.AxisCount != 3 || m.Params.InputFeaturesCount != 12 ||
		!slices.Equal(m.Params.Labels, []string{"still", "moving"}) || m.SensorName() != "accelerometer" || m.Kind() != "classification" {
		t.Fatalf("model = %+v", m)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		in   []float32
		want string
	}{
		{ones(12, 1), "still"},
		{ones(12, 9.5), "moving"},
		{[]float32{0.1, -2.25, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1e6}, "moving"},
	} {
		a, err := p.Classify(ctx, tc.in, false, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if a.Result.Classification[tc.want] != 0.9 {
			t.Errorf("features %v: classification %v, want %s at 0.9", tc.in, a.Result.Classification, tc.want)
		}
		if a.Timing.DSP != 1 || a.Timing.Classification != 2 {
			t.Errorf("timing %+v", a.Timing)
		}
	}
	got := readLog(t, log)
	if len(got) != 3 {
		t.Fatalf("the model saw %d requests, want 3", len(got))
	}
	want := []float64{0.1, -2.25, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1e6}
	for i, v := range want {
		// float32 on the way: 0.1 arrives as float32(0.1).
		if float32(got[2].Features[i]) != float32(v) {
			t.Fatalf("feature %d: model got %v, sent %v", i, got[2].Features[i], float32(v))
		}
	}
}

func TestProcessWrongCountIsAModelError(t *testing.T) {
	p := startFake(t, fakeConfig{Project: project(), Params: motionParams(3, 4, 50, "a", "b")}, ProcessOptions{})
	_, err := p.Classify(context.Background(), ones(5, 1), false, 5*time.Second)
	if !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), "expected 12 but got 5") {
		t.Fatalf("err = %v, want the model's own refusal", err)
	}
	// Still in step: the next request works.
	if _, err := p.Classify(context.Background(), ones(12, 1), false, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestProcessFaults(t *testing.T) {
	params := motionParams(1, 4, 10, "a", "b")
	for _, tc := range []struct {
		name    string
		cfg     fakeConfig
		want    error
		text    string
		timeout time.Duration
	}{
		{name: "crash", cfg: fakeConfig{CrashAfter: 2}, want: ErrExited, text: "crashing as configured"},
		{name: "hang", cfg: fakeConfig{HangAfter: 2}, want: ErrTimeout, timeout: 300 * time.Millisecond},
		{name: "garbage", cfg: fakeConfig{GarbageAfter: 2}, want: errGarbage},
		{name: "refuse", cfg: fakeConfig{RefuseAfter: 2}, want: ErrModel, text: "error code was -5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Project, tc.cfg.Params = project(), params
			p := startFake(t, tc.cfg, ProcessOptions{})
			timeout := cmpOr(tc.timeout, 5*time.Second)
			if _, err := p.Classify(context.Background(), ones(4, 1), false, timeout); err != nil {
				t.Fatalf("first classification: %v", err)
			}
			_, err := p.Classify(context.Background(), ones(4, 1), false, timeout)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v with %q", err, tc.want, tc.text)
			}
		})
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func TestStartFailures(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "plain.eim")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	failing := writeModel(t, dir, "failing.eim", fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "a"), FailStart: true})
	badHello := writeModel(t, dir, "bad.eim", fakeConfig{Project: project(), Params: map[string]any{"input_features_count": 0}})
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.eim"), "no such file"},
		{"not executable", notExec, "not executable"},
		{"exits at start", failing, "(exit status 4): ERR: failing at start as configured"},
		{"hello without features", badHello, "input_features_count 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(context.Background(), tc.path, ProcessOptions{RuntimeDir: t.TempDir()})
			if err == nil {
				p.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCloseStopsTheGroup: a model deaf to SIGINT, with a child of its own,
// is killed with its whole process group, and its socket directory goes.
func TestCloseStopsTheGroup(t *testing.T) {
	rt := t.TempDir()
	p := startFake(t, fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "a"), IgnoreSignals: true, Child: true},
		ProcessOptions{RuntimeDir: rt, StopTimeout: 200 * time.Millisecond})
	pid := p.cmd.Process.Pid
	child := 0
	for i := 0; i < 200 && child == 0; i++ { // the model prints its child's pid at start
		if m := regexp.MustCompile(`child (\d+)`).FindStringSubmatch(p.Output()); m != nil {
			child, _ = strconv.Atoi(m[1])
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if child == 0 {
		t.Fatalf("no child reported: %q", p.Output())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("model %d still exists: %v", pid, err)
	}
	// The child is re-parented and reaped by init (or a subreaper) once
	// the kill reaches it; until then it may show as running or a zombie.
	gone := func() bool {
		st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(child), "stat"))
		f := strings.Fields(string(st))
		return err != nil || len(f) > 2 && f[2] == "Z"
	}
	for i := 0; i < 500 && !gone(); i++ { // patience only: the kill was sent
		time.Sleep(10 * time.Millisecond)
	}
	if !gone() {
		t.Errorf("child %d survived its model", child)
	}
	if ents, _ := os.ReadDir(rt); len(ents) != 0 {
		t.Errorf("runtime dir keeps %d entries", len(ents))
	}
}

// TestClassifyAbortsOnContext: ending the context unblocks a classification
// waiting for a hung model.
func TestClassifyAbortsOnContext(t *testing.T) {
	p := startFake(t, fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "a"), HangAfter: 1}, ProcessOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Classify(ctx, ones(4, 1), false, time.Hour)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// A context that ended before the request was written fails the write
	// (a past deadline): that is the context's error too, not a model that
	// timed out (CI saw the cancel above win the race to the write).
	p2 := startFake(t, fakeConfig{Project: project(), Params: motionParams(1, 4, 10, "a")}, ProcessOptions{})
	ended, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := p2.Classify(ended, ones(4, 1), false, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with an ended context: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestFrameReader(t *testing.T) {
	in := "\n\x00{\"id\":1,\"label\":\"a}b{\\\"\"}\n\x00  {\"x\":{\"y\":[1,{}]}}\n\x00"
	fr := newFrameReader(strings.NewReader(in))
	for _, want := range []string{`{"id":1,"label":"a}b{\""}`, `{"x":{"y":[1,{}]}}`} {
		b, err := fr.next()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Fatalf("frame %q, want %q", b, want)
		}
		if !json.Valid(b) {
			t.Fatalf("frame %q is not JSON", b)
		}
	}
	if _, err := fr.next(); err == nil {
		t.Fatal("no error at the end")
	}
	if _, err := newFrameReader(strings.NewReader("Segfault\n")).next(); !errors.Is(err, errGarbage) {
		t.Fatalf("text outside an object: %v", err)
	}
}

func TestDecodeAnswer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`{"id":3,"success":true,"result":{}}`, nil},
		{`{"id":4,"success":true}`, errGarbage},
		{`{"success":true}`, errGarbage},
		{`{"error":"parse error"}`, errGarbage},
		{`{"id":3,"success":false,"error":"nope"}`, ErrModel},
		{`{"id":3}`, errGarbage},
		{`[1]`, errGarbage},
	} {
		err := decodeAnswer([]byte(tc.in), 3, nil)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestAppendFeatures(t *testing.T) {
	got := string(appendFeatures(nil, []float32{0, 16711680, -3, 0.5, 0.1, float32(1e-7)}))
	want := "0,16711680,-3,0.5,0.1,1e-07"
	if got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}
