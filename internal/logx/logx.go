// Package logx rate-limits repeated log lines. A sensor that loses data every
// few milliseconds, or a camera sending a bad frame 30 times a second, logs
// one line per interval with a count of what was held back, instead of
// filling the journal on a Pi's SD card.
package logx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Every lets one event through per interval and counts the rest. The zero
// value with Interval set is ready to use. Safe for concurrent use.
type Every struct {
	Interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether to log now and how many events were held back since
// the last line that was let through.
func (e *Every) Allow(now time.Time) (ok bool, suppressed int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.last.IsZero() && now.Sub(e.last) < e.Interval {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// Limited logs each distinct message at most once per interval, adding a
// "suppressed" count of the repeats it held back. Safe for concurrent use.
type Limited struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	gates map[string]*Every
}

// NewLimited returns a limiter writing to log (nil discards).
func NewLimited(log *slog.Logger, interval time.Duration) *Limited {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limited{log: log, interval: interval, now: time.Now, gates: map[string]*Every{}}
}

// Warn logs msg at warn level unless it was logged less than interval ago.
func (l *Limited) Warn(msg string, args ...any) { l.logAt(slog.LevelWarn, msg, args) }

// Info logs msg at info level, rate-limited like Warn.
func (l *Limited) Info(msg string, args ...any) { l.logAt(slog.LevelInfo, msg, args) }

func (l *Limited) logAt(level slog.Level, msg string, args []any) {
	l.mu.Lock()
	g, ok := l.gates[msg]
	if !ok {
		g = &Every{Interval: l.interval}
		l.gates[msg] = g
	}
	l.mu.Unlock()
	allow, held := g.Allow(l.now())
	if !allow {
		return
	}
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	l.log.Log(context.Background(), level, msg, args...)
}
