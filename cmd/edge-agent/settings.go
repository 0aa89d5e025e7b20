package main

import (
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/logx"
)

// The process-wide settings `run` owns: the logger (level, format, and the
// journal's priority prefix), the Go memory limit, and what a reload
// (SIGHUP) reads and applies.

// logLevel is log.level as a slog level (info for anything else; the
// loader has already refused other values).
func logLevel(c config.Log) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// newLevelLogger builds the logger for format (text or json) on w, at the
// level lv holds (a reload sets it). When w is the journal's stream (see
// logx.IsJournal), every line starts with its syslog priority, "<4>" for a
// warning, so `journalctl -p warning` shows the agent's warnings and
// errors; on a terminal or a file the lines are unchanged.
func newLevelLogger(w io.Writer, format string, lv *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv}
	handler := func(w io.Writer) slog.Handler {
		if format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	if f, ok := fileOf(w); ok && logx.IsJournal(f, os.Getenv(logx.EnvJournalStream)) {
		return slog.New(logx.WithPriorities(w, handler))
	}
	return slog.New(handler(w))
}

// EnvMemoryLimit is the Go runtime's own memory-limit variable; when set it
// wins over memory_limit.
const EnvMemoryLimit = "GOMEMLIMIT"

// applyMemoryLimit sets the Go runtime's soft memory limit to memory_limit
// (0: none), unless GOMEMLIMIT is set: the runtime applied that at start,
// and an operator's explicit value (a drop-in with Environment=) wins over
// the file. It logs the limit when it changes.
func applyMemoryLimit(limit conf.Size, log *slog.Logger) {
	if v := os.Getenv(EnvMemoryLimit); v != "" {
		log.Info("memory limit from the environment; memory_limit is not used", EnvMemoryLimit, v)
		return
	}
	n := int64(limit)
	if n <= 0 {
		n = math.MaxInt64 // the runtime's "no limit"
	}
	if prev := debug.SetMemoryLimit(n); prev != n {
		if limit <= 0 {
			log.Info("memory limit off (memory_limit: 0)")
		} else {
			log.Info("memory limit set", "memory_limit", limit.String())
		}
	}
}

// reloadOptions are the agent options that make `run` reloadable: SIGHUP
// asks for a reload, which reads path as `run` did at start (validated, the
// device resolved) and applies the log level and memory limit; lv is the
// logger's level. stop ends the signal subscription.
func reloadOptions(path string, log *slog.Logger, lv *slog.LevelVar) (opts agent.Options, stop func()) {
	hup, stop := hangups()
	return agent.Options{
		Reload: hup,
		LoadConfig: func() (*config.Config, error) {
			cfg, err := config.Load(path)
			if err != nil {
				return nil, err
			}
			cfg.Resolve(config.HostMachine(log))
			return cfg, nil
		},
		ApplySettings: func(cfg *config.Config) {
			lv.Set(logLevel(cfg.Log))
			applyMemoryLimit(cfg.MemoryLimit, log)
		},
	}, stop
}
