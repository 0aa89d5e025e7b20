// Package retry classifies errors for retry decisions and computes jittered
// exponential backoff. Links and upload workers wrap errors with Permanent or
// RetryAfter; supervisors inspect them with errors.As, never by string.
package retry

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
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

// MaxRetryAfter caps every wait a peer asks for (Retry-After, a rate-limit
// window, a "retry in" hint): one `Retry-After: 315360000` once parked every
// link, and the spool, for 87600 h. Fifteen minutes is long enough for any
// honest rate limit or maintenance window, and short enough that a broken or
// hostile reply costs at most that.
const MaxRetryAfter = 15 * time.Minute

// RetryAfterError carries the peer's requested wait (HTTP Retry-After, a
// rate-limit reset, a server "retry in" hint), at most MaxRetryAfter.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err with the wait the peer asked for, capped at
// MaxRetryAfter (whatever the source of d, no reply parks a link longer).
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Err: err, After: min(d, MaxRetryAfter)}
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
// relative to now, capped at MaxRetryAfter. It returns false when the header
// is absent or invalid. PeerWaits.Header does the same and logs a capped
// value.
func ParseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	d, ok := parseRetryAfter(h, now)
	return min(d, MaxRetryAfter), ok
}

// parseRetryAfter is ParseRetryAfter without the cap: what the peer asked
// for, saturated at the largest Duration.
func parseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if secs > uint64(math.MaxInt64/int64(time.Second)) { // ErrRange gives MaxUint64
			return math.MaxInt64, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true // Sub saturates
		}
		return 0, true
	}
	return 0, false
}

// PeerWaits applies MaxRetryAfter to the waits one link's peers ask for and
// logs the first one it had to cap, at warn (later ones at debug): a broken
// or hostile service shows up once in the journal without flooding it. A nil
// *PeerWaits caps without logging.
//
// Concurrency: safe for concurrent use.
type PeerWaits struct {
	log    *slog.Logger
	logged atomic.Bool
}

// NewPeerWaits returns a PeerWaits logging to log (nil: no logging).
func NewPeerWaits(log *slog.Logger) *PeerWaits { return &PeerWaits{log: log} }

// Header is ParseRetryAfter for h, logging a capped value.
func (p *PeerWaits) Header(h http.Header, now time.Time) (time.Duration, bool) {
	d, ok := parseRetryAfter(h, now)
	if !ok {
		return 0, false
	}
	return p.Cap("Retry-After", d), true
}

// Cap returns d capped at MaxRetryAfter, logging when it was over; source
// names where the wait came from ("Retry-After", "x-ratelimit-window").
func (p *PeerWaits) Cap(source string, d time.Duration) time.Duration {
	if d <= MaxRetryAfter {
		return d
	}
	if p != nil && p.log != nil {
		lvl := slog.LevelDebug
		if p.logged.CompareAndSwap(false, true) {
			lvl = slog.LevelWarn
		}
		p.log.Log(context.Background(), lvl, "peer asked for a longer wait than the agent allows; waiting the cap instead (logged once at warn)",
			"source", source, "asked", d.Round(time.Second), "cap", MaxRetryAfter)
	}
	return MaxRetryAfter
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
// the peer, so the larger of the two is used), else Next(). A peer's wait is
// never more than MaxRetryAfter, even in a RetryAfterError built by hand.
func (b *Backoff) NextFor(err error) time.Duration {
	d := b.Next()
	if ra, ok := After(err); ok && ra > d {
		return min(ra, MaxRetryAfter)
	}
	return d
}

// Reset starts over at Min.
func (b *Backoff) Reset() { b.attempt = 0 }
