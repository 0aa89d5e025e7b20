package edgeimpulse

import (
	"sync"
	"time"
)

// rateLimiter lets a repeated log line through once per period per key, so
// a peer that keeps sending garbage cannot flood the journal. Safe for
// concurrent use.
type rateLimiter struct {
	period time.Duration
	mu     sync.Mutex
	last   map[string]time.Time
	// suppressed counts lines held back per key since the last one logged.
	suppressed map[string]int
}

func newRateLimiter(period time.Duration) *rateLimiter {
	return &rateLimiter{period: period, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line for key may be logged now, and how many were
// suppressed before it.
func (r *rateLimiter) allow(key string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[key]; ok && now.Sub(t) < r.period {
		r.suppressed[key]++
		return false, 0
	}
	r.last[key] = now
	n := r.suppressed[key]
	r.suppressed[key] = 0
	return true, n
}

// logLimited logs a warning at most once a minute per key (debug otherwise).
func (l *Link) logLimited(key, msg string, args ...any) {
	ok, n := l.logRate.allow(key, l.deps.Clock.Now())
	if !ok {
		l.log.Debug(msg, args...)
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.log.Warn(msg, args...)
}
