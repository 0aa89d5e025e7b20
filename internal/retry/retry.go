// Package retry classifies errors for retry decisions and computes jittered
// exponential backoff. Links and upload workers wrap errors with Permanent or
// RetryAfter; supervisors inspect them with errors.As, never by string.
package retry

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PermanentError marks an error that retrying cannot fix (bad credentials, a
// rejected configuration). A supervisor stops the link with state failed.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as permanent. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err (or anything it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError carries the peer's requested wait (HTTP Retry-After, a
// rate-limit reset, a server "retry in" hint).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err with the wait the peer asked for.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Err: err, After: d}
}

// After returns the wait requested by err, if any.
func After(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}

// ParseRetryAfter reads an HTTP Retry-After header (seconds or HTTP date)
// relative to now. It returns false when the header is absent or invalid.
func ParseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}

// Policy configures a Backoff. The zero value is replaced by DefaultPolicy's
// fields where they are zero.
type Policy struct {
	Min    time.Duration // first wait
	Max    time.Duration // cap
	Factor float64       // growth per attempt, default 2
	Jitter float64       // fraction of the wait randomised, 0..1, default 0.2
	// StableAfter is how long a session must stay up before the backoff
	// resets to Min (used by supervisors).
	StableAfter time.Duration
}

// DefaultPolicy is 1s → 2m, ×2, 20 % jitter, stable after 1m.
var DefaultPolicy = Policy{Min: time.Second, Max: 2 * time.Minute, Factor: 2, Jitter: 0.2, StableAfter: time.Minute}

// WithDefaults fills zero fields from DefaultPolicy.
func (p Policy) WithDefaults() Policy {
	d := DefaultPolicy
	if p.Min <= 0 {
		p.Min = d.Min
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	if p.Factor < 1 {
		p.Factor = d.Factor
	}
	if p.Jitter < 0 || p.Jitter > 1 {
		p.Jitter = d.Jitter
	}
	if p.StableAfter <= 0 {
		p.StableAfter = d.StableAfter
	}
	return p
}

// Backoff computes successive waits. It is not safe for concurrent use; each
// retry loop owns one.
type Backoff struct {
	p       Policy
	attempt int
	// Rand returns a float in [0,1); nil means math/rand/v2. Tests set it to
	// make jitter predictable.
	Rand func() float64
}

// New returns a Backoff for p (zero fields defaulted).
func New(p Policy) *Backoff { return &Backoff{p: p.WithDefaults()} }

// Policy returns the effective policy.
func (b *Backoff) Policy() Policy { return b.p }

// Attempt returns how many waits were handed out since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Next returns the wait before the next attempt: Min·Factor^n capped at Max,
// then jittered downward by up to Jitter (so the cap is never exceeded and
// many devices restarting together spread out).
func (b *Backoff) Next() time.Duration {
	d := float64(b.p.Min)
	for i := 0; i < b.attempt && d < float64(b.p.Max); i++ {
		d *= b.p.Factor
	}
	if d > float64(b.p.Max) {
		d = float64(b.p.Max)
	}
	b.attempt++
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	d -= d * b.p.Jitter * r()
	return time.Duration(d)
}

// NextFor returns the wait after err: the peer's Retry-After when it asked for
// one (never less than the computed backoff's jittered value would be unfair to
// the peer, so the larger of the two is used), else Next().
func (b *Backoff) NextFor(err error) time.Duration {
	d := b.Next()
	if ra, ok := After(err); ok && ra > d {
		return ra
	}
	return d
}

// Reset starts over at Min.
func (b *Backoff) Reset() { b.attempt = 0 }
