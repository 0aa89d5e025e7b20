package serial

import (
	"sync"
	"time"
)

// limiter lets a repeated event through at most once per interval and counts
// what it held back (malformed lines may arrive hundreds per second). Safe
// for concurrent use.
type limiter struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many events were held back since
// the last line.
func (l *limiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
