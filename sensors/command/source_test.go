package command_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/command"
	"github.com/edge-agent/edge-agent/sensors/h264"
	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
	"github.com/edge-agent/edge-agent/sensors/v4l2/v4l2test"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh in PATH:", err)
	}
	p := filepath.Join(t.TempDir(), "cmd.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// logRecorder is a slog handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) count(msg string) (n, suppressed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Message != msg && !strings.HasPrefix(r.Message, msg) {
			continue
		}
		n++
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "suppressed" {
				suppressed += int(a.Value.Int64())
			}
			return true
		})
	}
	return n, suppressed
}

// runAll runs src until Run returns and collects every sample.
func runAll(t *testing.T, src sensors.Source) ([]sensors.Sample, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := make(chan sensors.Sample, 16)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	var got []sensors.Sample
	for {
		select {
		case s := <-out:
			got = append(got, s)
		case err := <-errc:
			for {
				select {
				case s := <-out:
					got = append(got, s)
				default:
					if ctx.Err() != nil {
						t.Fatal("Run did not finish in time")
					}
					return got, err
				}
			}
		}
	}
}

func newSource(t *testing.T, argv []string, output string, rate float64, log *slog.Logger) sensors.Source {
	t.Helper()
	src, err := command.New("cam", command.Config{Argv: argv, Output: output, Rate: rate, Width: 320, Height: 240},
		sensors.Env{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestOutputs(t *testing.T) {
	td := v4l2test.TestdataDir(t)
	h264File := filepath.Join(td, "testsrc-320x240-15fps-4s.h264")
	mjpegFile := filepath.Join(td, "testsrc-640x480-10frames.mjpeg")
	wavFile := filepath.Join(td, "tone-440hz-16k-mono-2s.wav")
	raw, err := os.ReadFile(h264File)
	if err != nil {
		t.Fatal(err)
	}
	aus, err := h264.SplitAll(raw)
	if err != nil {
		t.Fatal(err)
	}
	wav, err := os.ReadFile(wavFile)
	if err != nil {
		t.Fatal(err)
	}
	pcm := wav[44:]

	tests := []struct {
		name    string
		body    string
		output  string
		rate    float64
		class   sensors.Class
		samples int
		check   func(t *testing.T, got []sensors.Sample)
	}{
		{name: "h264 access units", body: "cat " + h264File, output: "h264", rate: 15, class: sensors.Video, samples: len(aus),
			check: func(t *testing.T, got []sensors.Sample) {
				for i, s := range got {
					if !bytes.Equal(s.Data, aus[i].Data) || s.Keyframe != aus[i].Keyframe {
						t.Fatalf("AU %d differs from the splitter's", i)
					}
				}
			}},
		{name: "h264 in odd chunks", body: "dd if=" + h264File + " bs=1000 2>/dev/null", output: "h264", rate: 15, class: sensors.Video, samples: len(aus)},
		{name: "mjpeg stills", body: "cat " + mjpegFile, output: "mjpeg", rate: 10, class: sensors.Still, samples: 10,
			check: func(t *testing.T, got []sensors.Sample) {
				for i, s := range got {
					if !mjpeg.IsJPEG(s.Data) {
						t.Fatalf("still %d is not a JPEG", i)
					}
				}
			}},
		{name: "pcm blocks", body: "tail -c +45 " + wavFile, output: "pcm", rate: 16000, class: sensors.Audio,
			samples: (len(pcm) + 639) / 640,
			check: func(t *testing.T, got []sensors.Sample) {
				var all []byte
				for _, s := range got {
					all = append(all, s.Data...)
				}
				if !bytes.Equal(all, pcm) {
					t.Fatalf("PCM differs: %d bytes, want %d", len(all), len(pcm))
				}
				if got[0].Duration != 20*time.Millisecond {
					t.Errorf("block duration %v", got[0].Duration)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource(t, []string{script(t, tc.body)}, tc.output, tc.rate, nil)
			if src.Info().Class != tc.class {
				t.Fatalf("class %v", src.Info().Class)
			}
			if _, ok := src.(sensors.KeyframeRequester); ok {
				t.Error("a command source must not claim keyframe control")
			}
			got, err := runAll(t, src)
			if !errors.Is(err, command.ErrExited) {
				t.Fatalf("err = %v, want ErrExited", err)
			}
			if len(got) != tc.samples {
				t.Fatalf("got %d samples, want %d", len(got), tc.samples)
			}
			for i, s := range got {
				if s.Class != tc.class || s.Seq != uint64(i) {
					t.Fatalf("sample %d: class %v seq %d", i, s.Class, s.Seq)
				}
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name    string
		argv    func(t *testing.T) []string
		output  string
		wantErr func(error) bool
	}{
		{name: "exits early with status 3", argv: func(t *testing.T) []string { return []string{script(t, "echo starting >&2; exit 3")} },
			output: "h264", wantErr: func(err error) bool {
				var ee *exec.ExitError
				return errors.Is(err, command.ErrExited) && errors.As(err, &ee) && ee.ExitCode() == 3
			}},
		{name: "garbage instead of h264", argv: func(t *testing.T) []string {
			return []string{script(t, "yes 'this is not video' | head -c 6000000")}
		}, output: "h264", wantErr: func(err error) bool { return errors.Is(err, h264.ErrNALTooLarge) }},
		{name: "garbage instead of mjpeg", argv: func(t *testing.T) []string {
			return []string{script(t, "yes 'this is not video' | head -c 20000000")}
		}, output: "mjpeg", wantErr: func(err error) bool { return errors.Is(err, mjpeg.ErrNoFrame) }},
		{name: "program not found", argv: func(t *testing.T) []string { return []string{"/nonexistent/rpicam-vid"} },
			output: "h264", wantErr: func(err error) bool { return errors.Is(err, os.ErrNotExist) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource(t, tc.argv(t), tc.output, 15, nil)
			_, err := runAll(t, src)
			if err == nil || !tc.wantErr(err) {
				t.Fatalf("unexpected error: %v", err)
			}
		})
	}
}

// TestCancelStopsCommand: a command that keeps running (with a child that
// holds the pipe) is stopped when ctx ends, and Run returns nil.
func TestCancelStopsCommand(t *testing.T) {
	td := v4l2test.TestdataDir(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	body := fmt.Sprintf("cat %s; sleep 300 & echo $! > %s; wait", filepath.Join(td, "testsrc-320x240-15fps-4s.h264"), pidFile)
	src := newSource(t, []string{script(t, body)}, "h264", 15, nil)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan sensors.Sample)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	for i := 0; i < 5; i++ {
		<-out
	}
	// Wait until the grandchild runs, reading samples so cat can finish.
	var pid int
	for deadline := time.Now().Add(20 * time.Second); pid == 0; {
		if b, err := os.ReadFile(pidFile); err == nil {
			fmt.Sscan(string(b), &pid)
		}
		if time.Now().After(deadline) {
			t.Fatal("the script never started its child")
		}
		select {
		case <-out:
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	// The grandchild (sleep) must be gone too: it was in the process group.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("child %d of the command survived cancellation", pid)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited and only waits for its parent's wait.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestStderrIsRateLimited(t *testing.T) {
	rec := &logRecorder{}
	src := newSource(t, []string{script(t, `i=0; while [ $i -lt 500 ]; do echo "frame $i" >&2; i=$((i+1)); done; printf 'no newline' >&2`)},
		"h264", 15, slog.New(rec))
	if _, err := runAll(t, src); !errors.Is(err, command.ErrExited) {
		t.Fatalf("err = %v", err)
	}
	n, suppressed := rec.count("command stderr")
	if n == 0 || n > 15 {
		t.Errorf("logged %d stderr records, want 1..15", n)
	}
	if n+suppressed < 500 {
		t.Errorf("logged %d + suppressed %d < 501 lines: lines were lost from the count", n, suppressed)
	}
}

// TestHubRestartsCommand: the hub restarts a command that exits, with
// backoff, and samples keep coming.
func TestHubRestartsCommand(t *testing.T) {
	td := v4l2test.TestdataDir(t)
	src := newSource(t, []string{script(t, "cat "+filepath.Join(td, "testsrc-640x480-10frames.mjpeg"))}, "mjpeg", 10, nil)
	h := hub.New(hub.Options{Restart: retry.Policy{Min: time.Millisecond, Max: 10 * time.Millisecond}})
	defer h.Close()
	if err := h.Add(src); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("cam", sensors.SubscribeOptions{Queue: 64, Policy: sensors.NoDrop})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	timeout := time.After(30 * time.Second)
	for n := 0; n < 25; n++ {
		select {
		case <-sub.C():
		case <-timeout:
			t.Fatalf("only %d stills", n)
		}
	}
	if st := h.Stats()[0]; st.Restarts < 2 {
		t.Errorf("restarts = %d, want >= 2", st.Restarts)
	}
}
