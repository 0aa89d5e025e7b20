package v4l2

import (
	"log/slog"
	"sync"
	"time"
)

// logLimiter lets one message per key through per interval and reports how
// many were held back, so a camera that sends a bad frame 30 times a second
// logs twice a minute, not 30 times a second. Safe for concurrent use.
type logLimiter struct {
	log      *slog.Logger
	interval time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newLogLimiter(log *slog.Logger, interval time.Duration) *logLimiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &logLimiter{log: log, interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// Warn logs msg unless the same msg was logged less than interval ago.
func (l *logLimiter) Warn(msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if t, ok := l.last[msg]; ok && now.Sub(t) < l.interval {
		l.held[msg]++
		l.mu.Unlock()
		return
	}
	held := l.held[msg]
	l.last[msg], l.held[msg] = now, 0
	l.mu.Unlock()
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	l.log.Warn(msg, args...)
}
