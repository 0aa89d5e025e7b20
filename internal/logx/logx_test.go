package logx

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	e := Every{Interval: time.Second}
	t0 := time.Unix(100, 0)
	if ok, n := e.Allow(t0); !ok || n != 0 {
		t.Fatal("first event held back")
	}
	for i := 1; i <= 5; i++ {
		if ok, _ := e.Allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatalf("event %d inside the interval let through", i)
		}
	}
	if ok, n := e.Allow(t0.Add(time.Second)); !ok || n != 5 {
		t.Errorf("after the interval: ok=%v suppressed=%d, want true 5", ok, n)
	}
}

func TestLimitedPerMessage(t *testing.T) {
	var buf bytes.Buffer
	l := NewLimited(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute)
	now := time.Unix(100, 0)
	l.now = func() time.Time { return now }
	for range 3 {
		l.Warn("bad frame", "n", 1)
		l.Warn("device gone")
	}
	now = now.Add(time.Minute)
	l.Warn("bad frame")
	out := buf.String()
	if got := strings.Count(out, "bad frame"); got != 2 {
		t.Errorf("bad frame logged %d times, want 2:\n%s", got, out)
	}
	if strings.Count(out, "device gone") != 1 || !strings.Contains(out, "suppressed=2") {
		t.Errorf("output:\n%s", out)
	}
}
