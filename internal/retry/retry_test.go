package retry_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := retry.New(retry.Policy{Min: time.Second, Max: 10 * time.Second, Factor: 2, Jitter: 0.5})
	b.Rand = func() float64 { return 0 } // no jitter
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("waits = %v, want %v s", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != time.Second {
		t.Errorf("after Reset: %v", d)
	}
}

func TestBackoffJitterStaysUnderCap(t *testing.T) {
	b := retry.New(retry.Policy{Min: time.Second, Max: 4 * time.Second, Factor: 2, Jitter: 0.25})
	b.Rand = func() float64 { return 0.999999 }
	for range 5 {
		b.Next()
	}
	if d := b.Next(); d > 4*time.Second || d < 3*time.Second {
		t.Errorf("jittered wait %v outside [3s,4s]", d)
	}
}

func TestNextForHonoursRetryAfter(t *testing.T) {
	b := retry.New(retry.Policy{Min: time.Second, Max: time.Minute})
	b.Rand = func() float64 { return 0 }
	err := fmt.Errorf("upload: %w", retry.RetryAfter(errors.New("503"), 30*time.Second))
	if d := b.NextFor(err); d != 30*time.Second {
		t.Errorf("NextFor = %v, want 30s", d)
	}
	if d := b.NextFor(errors.New("plain")); d != 2*time.Second {
		t.Errorf("NextFor plain = %v, want 2s", d)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad api key")
	err := fmt.Errorf("hello: %w", retry.Permanent(base))
	if !retry.IsPermanent(err) || !errors.Is(err, base) {
		t.Errorf("IsPermanent=%v Is=%v", retry.IsPermanent(err), errors.Is(err, base))
	}
	if retry.IsPermanent(base) || retry.Permanent(nil) != nil {
		t.Error("plain error counted as permanent, or Permanent(nil) != nil")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		want  time.Duration
		ok    bool
	}{
		{"seconds", "120", 2 * time.Minute, true},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"past date", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"absent", "", 0, false},
		{"garbage", "soon", 0, false},
		{"negative", "-5", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			got, ok := retry.ParseRetryAfter(h, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v,%v want %v,%v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
