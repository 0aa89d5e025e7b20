package retry_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
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

// TestTrustRetryAfterCapped: one reply once parked every link for 87600 h
// (Retry-After: 315360000). Seconds, an HTTP date far in the future, a
// number past any Duration and a hand-built RetryAfter are all capped at
// MaxRetryAfter, and NextFor never waits longer.
func TestTrustRetryAfterCapped(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{
		"315360000",
		now.AddDate(100, 0, 0).Format(http.TimeFormat),
		"99999999999999999999999", // overflows uint64
		"9223372036854775807",     // overflows a Duration in seconds
		"901",                     // just over the cap
	} {
		h := http.Header{"Retry-After": {v}}
		d, ok := retry.ParseRetryAfter(h, now)
		if !ok || d != retry.MaxRetryAfter {
			t.Errorf("ParseRetryAfter(%q) = %v,%v, want %v", v, d, ok, retry.MaxRetryAfter)
		}
		d, ok = retry.NewPeerWaits(nil).Header(h, now)
		if !ok || d != retry.MaxRetryAfter {
			t.Errorf("PeerWaits.Header(%q) = %v,%v, want %v", v, d, ok, retry.MaxRetryAfter)
		}
		b := retry.New(retry.Policy{Min: time.Second, Max: time.Minute})
		if w := b.NextFor(retry.RetryAfter(errors.New("503"), d)); w != retry.MaxRetryAfter {
			t.Errorf("NextFor after %q = %v", v, w)
		}
	}
	if d, _ := retry.ParseRetryAfter(http.Header{"Retry-After": {"900"}}, now); d != 15*time.Minute {
		t.Errorf("900 s = %v, want exactly the cap", d)
	}
	if d, _ := retry.After(retry.RetryAfter(errors.New("x"), 87600*time.Hour)); d != retry.MaxRetryAfter {
		t.Errorf("RetryAfter(87600h) = %v", d)
	}
	b := retry.New(retry.Policy{})
	if w := b.NextFor(&retry.RetryAfterError{Err: errors.New("x"), After: 87600 * time.Hour}); w != retry.MaxRetryAfter {
		t.Errorf("NextFor(hand-built 87600h) = %v", w)
	}
}

// TestTrustPeerWaitsLogsCapOnce: the first capped wait is logged at warn,
// later ones only at debug, and a wait under the cap is not logged.
func TestTrustPeerWaitsLogsCapOnce(t *testing.T) {
	var buf logxtest.Buffer
	p := retry.NewPeerWaits(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	now := time.Now()
	p.Header(http.Header{"Retry-After": {"30"}}, now)
	if buf.String() != "" {
		t.Fatalf("a wait under the cap was logged: %s", buf.String())
	}
	for range 3 {
		if d, _ := p.Header(http.Header{"Retry-After": {"315360000"}}, now); d != retry.MaxRetryAfter {
			t.Fatalf("wait %v", d)
		}
	}
	if d := p.Cap("x-ratelimit-window", 2*time.Hour); d != retry.MaxRetryAfter {
		t.Fatalf("Cap = %v", d)
	}
	out := buf.String()
	if n := strings.Count(out, "level=WARN"); n != 1 {
		t.Errorf("%d warn lines, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "asked=87600h0m0s") || !strings.Contains(out, "cap=15m0s") {
		t.Errorf("the log does not say what was asked and the cap:\n%s", out)
	}
}
