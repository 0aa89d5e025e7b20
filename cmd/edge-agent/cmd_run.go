package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/identity"
)

// Set by the Makefile with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

// Exit codes (the user-facing contract in docs/DESIGN.md).
const (
	exitOK     = 0
	exitFatal  = 1
	exitConfig = 2
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "config file")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Log))
	log := newLevelLogger(stderr, cfg.Log.Format, level)
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	cfg.Resolve(config.HostMachine(log))
	applyMemoryLimit(cfg.MemoryLimit, log)
	opts, stop := reloadOptions(*path, log, level)
	defer stop()
	return runAgent(ctx, cfg, log, opts, stderr)
}

// runAgent builds and runs the agent until ctx ends.
func runAgent(ctx context.Context, cfg *config.Config, log *slog.Logger, opts agent.Options, stderr io.Writer) int {
	opts.Logger = log
	opts.Version = versionString()
	a, err := agent.New(cfg, opts)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFatal
	}
	if err := a.Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		return exitFatal
	}
	return exitOK
}

func cmdCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: edge-agent check-config FILE")
		return exitConfig
	}
	cfg, err := config.Load(fs.Arg(0))
	var cerr *config.Error
	switch {
	case errors.As(err, &cerr):
		for _, p := range cerr.Problems {
			fmt.Fprintln(stdout, p)
		}
		fmt.Fprintf(stdout, "%s: %d problem(s)\n", fs.Arg(0), len(cerr.Problems))
		return exitConfig
	case err != nil:
		fmt.Fprintln(stdout, err)
		return exitConfig
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stdout, "warning: "+w)
	}
	fmt.Fprintf(stdout, "%s: ok (%d sensors, %d links)\n", fs.Arg(0), len(cfg.Sensors), len(cfg.Links))
	return exitOK
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	procRoot := fs.String("proc-root", "/proc", "root of procfs, for the board model (for tests and containers)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	fmt.Fprintf(stdout, "edge-agent %s\n", versionString())
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	fmt.Fprintf(stdout, "commit:     %s\n", c)
	fmt.Fprintf(stdout, "go:         %s\n", runtime.Version())
	fmt.Fprintf(stdout, "platform:   %s/%s%s\n", runtime.GOOS, runtime.GOARCH, goarm())
	fmt.Fprintf(stdout, "board:      %s\n", boardModel(*procRoot))
	mic := "no (built without cgo; use a `command` sensor with arecord)"
	if cgoEnabled {
		mic = "yes (malgo, cgo)"
	}
	fmt.Fprintf(stdout, "microphone: %s\n", mic)
	return exitOK
}

func versionString() string { return version }

func goarm() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				return " (GOARM=" + s.Value + ")"
			}
		}
	}
	return ""
}

// newLogger builds the slog logger the config asks for (see
// newLevelLogger).
func newLogger(w io.Writer, c config.Log) *slog.Logger {
	lv := new(slog.LevelVar)
	lv.Set(logLevel(c))
	return newLevelLogger(w, c.Format, lv)
}

// boardModel is the board's device-tree model for `version` and `sensors`,
// or says that there is none (a PC has no device tree).
func boardModel(procRoot string) string {
	if m := identity.Model(procRoot); m != "" {
		return m
	}
	return "unknown (no " + filepath.Join(procRoot, "device-tree", "model") + ")"
}
