package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/transport/frameio"
)

// cmdPair implements `edge-agent pair`: Frame.io device-code pairing (the
// user-facing contract in docs/DESIGN.md). It stores the tokens where the
// running link reads them (token_file, or state_dir/links/<name>/tokens.json),
// so pairing works while the daemon runs. -revoke deauthorizes the device instead. The
// files belong to the user owning the state directory (the daemon's), also
// when pair runs as root; see pairOwnership.
func cmdPair(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return pairAs(ctx, os.Geteuid(), args, stdout, stderr)
}

// pairAs is cmdPair run as user euid (tests inject it).
func pairAs(ctx context.Context, euid int, args []string, stdout, stderr io.Writer) int {
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
	// Read-only: pair may run as root, and a device-id file it made would be
	// root's, unreadable to the daemon.
	machine := config.HostMachine(nil)
	machine.ReadOnly = true
	cfg.Resolve(machine)
	name, fc, err := pickFrameIO(cfg, *linkName)
	if err != nil {
		fmt.Fprintf(stderr, "edge-agent pair: %v\n", err)
		return exitFatal
	}
	dir := agent.LinkStateDir(cfg.StateDir, name)
	secrets := redact.New()
	secrets.Add(cfg.Secrets...)
	opts := frameio.PairOptions{
		TokenPath:  frameio.TokenPath(fc, dir),
		DeviceName: cfg.Device.Name,
		Version:    versionString(),
		Out:        stdout,
		Terminal:   isTerminal(stdout),
		Secrets:    secrets,
	}
	// Whose files: the owner of the state directory (or of token_file's).
	home, written := cfg.StateDir, []string{filepath.Join(cfg.StateDir, "links"), dir, opts.TokenPath}
	if fc.TokenFile != "" {
		home, written = filepath.Dir(fc.TokenFile), []string{opts.TokenPath}
	}
	owner, ownerName, err := ownerOf(home)
	if owner == nil {
		written = append([]string{home}, written...) // made here, below
	}
	if err == nil {
		owner, err = pairOwnership(euid, owner, ownerName, lookupService(), home, pairCommand(args))
	}
	if err != nil {
		fmt.Fprintf(stderr, "edge-agent pair: %v\n", err)
		return exitFatal
	}
	handOver := func() bool {
		if owner == nil {
			return true
		}
		if err := chownAll(owner, written...); err != nil {
			fmt.Fprintf(stderr, "edge-agent pair: giving the files to the agent's user: %v\n", err)
			return false
		}
		return true
	}
	if fc.TokenFile == "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			fmt.Fprintf(stderr, "edge-agent pair: %v\n", err)
			return exitFatal
		}
		if !handOver() {
			return exitFatal
		}
	}
	if *revoke {
		if err := frameio.Revoke(ctx, *fc, opts); err != nil {
			fmt.Fprintf(stderr, "edge-agent pair -revoke: %v\n", secrets.Err(err))
			return exitFatal
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "Pairing link %q with Frame.io.\n", name)
	_, err = frameio.Pair(ctx, *fc, opts)
	if !handOver() {
		return exitFatal
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "edge-agent pair: cancelled")
			return exitFatal
		}
		fmt.Fprintf(stderr, "edge-agent pair: %v\n", secrets.Err(err))
		return exitFatal
	}
	return exitOK
}

// pickFrameIO returns the frameio link named want, or the only one.
func pickFrameIO(cfg *config.Config, want string) (string, *frameio.Config, error) {
	var (
		names  []string
		blocks []*frameio.Config
	)
	for _, l := range cfg.Links {
		fc, ok := l.Block.(*frameio.Config)
		if l.Kind != "frameio" || !ok {
			continue
		}
		if want != "" && l.Name == want {
			return l.Name, fc, nil
		}
		names, blocks = append(names, l.Name), append(blocks, fc)
	}
	switch {
	case want != "":
		return "", nil, fmt.Errorf("no frameio link named %q (frameio links: %s)", want, strings.Join(names, ", "))
	case len(names) == 0:
		return "", nil, errors.New("the config has no frameio link")
	case len(names) > 1:
		return "", nil, fmt.Errorf("several frameio links (%s); choose one with -link", strings.Join(names, ", "))
	}
	return names[0], blocks[0], nil
}
