package logx

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Under systemd the service's stderr is a stream socket to journald, which
// reads a line that starts with "<N>" as a message of syslog priority N
// (SyslogLevelPrefix=, on by default: systemd.exec(5)); the priorities are
// sd-daemon(3)'s. Without the prefix every line is stored at the unit's
// SyslogLevel=, info, and `journalctl -p warning` finds none of the agent's
// warnings. systemd tells the service which stream is the journal's by
// setting JOURNAL_STREAM to that stream's "device:inode" (systemd.exec(5),
// "Environment variables in spawned processes"): a process whose stderr was
// redirected elsewhere since (a pipe into a file, a terminal) must not
// prefix, so the check compares stderr's own device and inode.

// EnvJournalStream is the variable systemd sets when stdout or stderr is
// connected to the journal.
const EnvJournalStream = "JOURNAL_STREAM"

// IsJournal reports whether f is the journal's stream that journalStream
// (the value of JOURNAL_STREAM, "device:inode" in decimal) names.
func IsJournal(f *os.File, journalStream string) bool {
	devS, inoS, ok := strings.Cut(journalStream, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devS, 10, 64)
	ino, err2 := strconv.ParseUint(inoS, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino // narrower types on some ports
}

// Priority is the sd-daemon(3) syslog priority of a slog level: error 3,
// warning 4, info 6, debug 7 (levels between take the one below them, so
// a level just under warn is still info).
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // SD_ERR
	case l >= slog.LevelWarn:
		return 4 // SD_WARNING
	case l >= slog.LevelInfo:
		return 6 // SD_INFO
	}
	return 7 // SD_DEBUG
}

// WithPriorities returns a handler made by newHandler whose every output
// line starts with the record's "<N>" priority. newHandler is called once,
// with the writer that adds the prefix (slog's text and JSON handlers write
// each record with one Write); the handler and its WithAttrs/WithGroup
// children share it.
//
// Concurrency: safe for concurrent use; records are written one at a time.
func WithPriorities(w io.Writer, newHandler func(io.Writer) slog.Handler) slog.Handler {
	pw := &priorityWriter{w: w}
	return &priorityHandler{inner: newHandler(pw), pw: pw}
}

// priorityWriter prefixes each line of a Write with the priority of the
// record being written, which priorityHandler.Handle sets under mu.
type priorityWriter struct {
	mu   sync.Mutex
	w    io.Writer
	prio int
	buf  []byte
}

// Write is called by the inner handler inside priorityHandler.Handle, with
// mu held. A record that spans lines (a handler that does not escape
// newlines) gets the prefix on each, so journald files every line at the
// record's priority.
func (p *priorityWriter) Write(b []byte) (int, error) {
	prefix := []byte{'<', byte('0' + p.prio), '>'}
	p.buf = p.buf[:0]
	for line := range bytes.Lines(b) {
		p.buf = append(append(p.buf, prefix...), line...)
	}
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

type priorityHandler struct {
	inner slog.Handler
	pw    *priorityWriter
}

func (h *priorityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prio = Priority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *priorityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &priorityHandler{inner: h.inner.WithAttrs(as), pw: h.pw}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{inner: h.inner.WithGroup(name), pw: h.pw}
}
