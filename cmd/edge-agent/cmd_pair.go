package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/transport/frameio"
)

// cmdPair implements `edge-agent pair`: Frame.io device-code pairing
// (config.md). It stores the tokens where the running link reads them
// (token_file, or state_dir/links/<name>/tokens.json), so pairing works
// while the daemon runs. -revoke deauthorizes the device instead.
func cmdPair(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "config file")
	linkName := fs.String("link", "", "the frameio link to pair (default: the only one)")
	revoke := fs.Bool("revoke", false, "deauthorize the device at Frame.io and delete the local tokens")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	cfg.Resolve("/proc")
	name, fc, err := pickFrameIO(cfg, *linkName)
	if err != nil {
		fmt.Fprintf(stderr, "edge-agent pair: %v\n", err)
		return exitFatal
	}
	dir := agent.LinkStateDir(cfg.StateDir, name)
	opts := frameio.PairOptions{
		TokenPath:  frameio.TokenPath(fc, dir),
		DeviceName: cfg.Device.Name,
		Version:    versionString(),
		Out:        stdout,
		Terminal:   isTerminal(stdout),
	}
	if fc.TokenFile == "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			fmt.Fprintf(stderr, "edge-agent pair: %v\n", err)
			return exitFatal
		}
	}
	if *revoke {
		if err := frameio.Revoke(ctx, *fc, opts); err != nil {
			fmt.Fprintf(stderr, "edge-agent pair -revoke: %v\n", err)
			return exitFatal
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "Pairing link %q with Frame.io.\n", name)
	if _, err := frameio.Pair(ctx, *fc, opts); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "edge-agent pair: cancelled")
			return exitFatal
		}
		fmt.Fprintf(stderr, "edge-agent pair: %v\n", err)
		return exitFatal
	}
	return exitOK
}

// pickFrameIO returns the frameio link named want, or the only one.
func pickFrameIO(cfg *config.Config, want string) (string, *frameio.Config, error) {
	var names []string
	for i := range cfg.Links {
		l := &cfg.Links[i]
		if l.Kind != "frameio" || l.FrameIO == nil {
			continue
		}
		if want != "" && l.Name == want {
			return l.Name, l.FrameIO, nil
		}
		names = append(names, l.Name)
	}
	switch {
	case want != "":
		return "", nil, fmt.Errorf("no frameio link named %q (frameio links: %s)", want, strings.Join(names, ", "))
	case len(names) == 0:
		return "", nil, errors.New("the config has no frameio link")
	case len(names) > 1:
		return "", nil, fmt.Errorf("several frameio links (%s); choose one with -link", strings.Join(names, ", "))
	}
	for i := range cfg.Links {
		if cfg.Links[i].Name == names[0] {
			return names[0], cfg.Links[i].FrameIO, nil
		}
	}
	return "", nil, errors.New("unreachable")
}
