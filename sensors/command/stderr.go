package command

import (
	"bytes"
	"log/slog"
	"sync"
	"time"
)

// Limits of the stderr log: encoders such as ffmpeg print a status line per
// frame, which must not flood the journal of a Pi.
const (
	maxLineBytes   = 512
	burstLines     = 10
	burstWindow    = 30 * time.Second
	maxPendingLine = 4096
)

// stderrLog is the io.Writer given to the process as its stderr. It splits
// the stream into lines and logs at most burstLines per burstWindow; the
// number held back is reported with the next line that gets through.
// os/exec writes to it from one goroutine; the mutex makes Flush safe too.
type stderrLog struct {
	log *slog.Logger
	now func() time.Time

	mu          sync.Mutex
	partial     []byte
	windowStart time.Time
	inWindow    int
	suppressed  int
}

func newStderrLog(log *slog.Logger) *stderrLog {
	return &stderrLog{log: log, now: time.Now}
}

func (l *stderrLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(l.partial)+len(p) > maxPendingLine {
				p = p[:maxPendingLine-len(l.partial)]
			}
			l.partial = append(l.partial, p...)
			break
		}
		line := append(l.partial, p[:i]...)
		l.partial = l.partial[:0]
		l.emitLocked(line)
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a final line that had no newline, and any count still held back.
func (l *stderrLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.emitLocked(l.partial)
		l.partial = l.partial[:0]
	}
	if l.suppressed > 0 {
		l.log.Warn("command stderr lines suppressed", "suppressed", l.suppressed)
		l.suppressed = 0
	}
}

func (l *stderrLog) emitLocked(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if len(line) > maxLineBytes {
		line = append(line[:maxLineBytes:maxLineBytes], "…"...)
	}
	now := l.now()
	if now.Sub(l.windowStart) >= burstWindow {
		l.windowStart, l.inWindow = now, 0
	}
	if l.inWindow >= burstLines {
		l.suppressed++
		return
	}
	l.inWindow++
	args := []any{"line", string(line)}
	if l.suppressed > 0 {
		args = append(args, "suppressed", l.suppressed)
		l.suppressed = 0
	}
	l.log.Warn("command stderr", args...)
}
