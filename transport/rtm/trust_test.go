package rtm_test

import (
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/transport/rtm"
)

// trustSession dials one session against the fake, logging into a buffer,
// and serves it until the test ends.
func trustSession(t *testing.T) (*env, *logxtest.Buffer, <-chan error) {
	t.Helper()
	e := newEnv(t, time.Second)
	logs := &logxtest.Buffer{}
	e.deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := e.cfg
	cfg.Record.Start = "manual"
	link, err := rtm.NewWithOptions(cfg, e.deps, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := link.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { served <- sess.Serve(t.Context()) })
	t.Cleanup(func() {
		sess.Close()
		wg.Wait()
	})
	return e, logs, served
}

// marker sends a recording_state the link shows in /status and waits for
// it: every frame sent before it has been handled.
func marker(t *testing.T, e *env, served <-chan error, state string) {
	t.Helper()
	e.fake.SendRaw([]byte(`{"type":"recording_state","data":{"state":"` + state + `"}}`))
	waitFor(t, "the marker message", 30*time.Second, func() bool { return e.stats.Details()["recording"] == state })
	select {
	case err := <-served:
		t.Fatalf("session ended: %v", err)
	default:
	}
}

// TestTrustRemoteCandidatesCappedForTheSession: candidates after the answer
// were applied without limit (20 000 cost 40 s of CPU, ~15 000 goroutines and
// 130 MiB in pion). Now the session takes at most 64 distinct ones, drops the
// rest (counted in /status) and repeats cost nothing.
func TestTrustRemoteCandidatesCappedForTheSession(t *testing.T) {
	e, _, served := trustSession(t)
	marker(t, e, served, rtm.RecordingStopped)
	runtime.GC()
	base := runtime.NumGoroutine()
	const n = 3000
	peak := 0
	for i := range n {
		line := fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 20000+i)
		e.fake.SendRaw([]byte(`{"type":"candidate","data":{"candidate":{"candidate":"` + line + `","sdpMid":"0","sdpMLineIndex":0}}}`))
		if i%8 == 0 { // and a duplicate of an early one
			e.fake.SendRaw([]byte(`{"type":"candidate","data":{"candidate":{"candidate":"candidate:0 1 udp 2130706431 127.0.0.1 20000 typ host","sdpMid":"0","sdpMLineIndex":0}}}`))
		}
		if i%100 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	marker(t, e, served, rtm.RecordingFailed)
	peak = max(peak, runtime.NumGoroutine())
	dropped, _ := strconv.Atoi(e.stats.Details()["remote_candidates_dropped"])
	if dropped < n-64 || dropped > n {
		t.Errorf("remote_candidates_dropped = %d, want about %d (all but the session's 64)", dropped, n-64)
	}
	if grow := peak - base; grow > 200 {
		t.Errorf("goroutines grew by %d during a flood of %d candidates (want bounded by the cap)", grow, n)
	}
}

// TestTrustUnknownTypesBounded: every distinct unknown type (up to 256 KiB
// each) was kept in the log-once map and logged whole at info: 1000 such
// types held 100 MiB. Now the set is bounded, and so is the logged text.
func TestTrustUnknownTypesBounded(t *testing.T) {
	e, logs, served := trustSession(t)
	marker(t, e, served, rtm.RecordingStopped)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n, size = 256, 16 << 10
	pad := strings.Repeat("t", size)
	for i := range n {
		e.fake.SendRaw([]byte(`{"type":"` + pad + strconv.Itoa(i) + `","data":{}}`))
	}
	marker(t, e, served, rtm.RecordingFailed)
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap %+d KiB", (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 2<<20 {
		t.Errorf("heap grew by %.1f MiB after %d unknown types of %d KiB (want bounded)", float64(grow)/(1<<20), n, size>>10)
	}
	lines := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "message type not handled") {
			lines++
			if len(l) > 1024 {
				t.Fatalf("logged line of %d bytes", len(l))
			}
		}
	}
	if lines == 0 || lines > 32 {
		t.Errorf("%d log lines for %d distinct unknown types, want 1..32", lines, n)
	}
}
