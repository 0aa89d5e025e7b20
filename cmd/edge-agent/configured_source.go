package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/sensors"
)

// configuredSource builds one sensor of the config file at cfgPath, the one
// named name, through the agent's factory as the daemon would, for the
// commands that run a sensor by itself (sample, infer); sysRoot and devRoot
// stand for /sys and /dev. The logger it returns, which the source logs to
// as well, writes warnings and worse to stderr. When it cannot build the
// source it says why on stderr, after the command's name cmd (the config
// does not load, has no sensor of that name — the names it has follow — or
// the factory refuses it), and returns false: the command fails. It only
// builds: the source runs once the caller starts it.
func configuredSource(stderr io.Writer, cmd, cfgPath, name, sysRoot, devRoot string) (sensors.Source, *slog.Logger, bool) {
	src, log, err := buildConfiguredSource(cfgPath, name, sysRoot, devRoot, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, nil, false
	}
	return src, log, true
}

// buildConfiguredSource is configuredSource's work; its error is the
// message configuredSource prints, as it stands.
func buildConfiguredSource(cfgPath, name, sysRoot, devRoot string, stderr io.Writer) (sensors.Source, *slog.Logger, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	var sc *config.Sensor
	var names []string
	for i := range cfg.Sensors {
		names = append(names, cfg.Sensors[i].Name)
		if cfg.Sensors[i].Name == name {
			sc = &cfg.Sensors[i]
		}
	}
	if sc == nil {
		return nil, nil, fmt.Errorf("no sensor %q in %s (configured: %s)", name, cfgPath, strings.Join(names, ", "))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := agent.NewSource(*sc, sensors.Env{Logger: log, SysRoot: sysRoot, DevRoot: devRoot, ProcRoot: "/proc"})
	if err != nil {
		return nil, nil, err
	}
	return src, log, nil
}
