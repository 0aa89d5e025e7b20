package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/console"
)

// cmdConsoleToken implements `edge-agent console-token [-config FILE]`: it
// prints the token the web console asks for beyond loopback (docs/API.md,
// "Access"), read from the file the agent reads it from (status.token_file,
// else state_dir/console-token), so a user can log in or script the API.
// When the agent has not made the file yet, it is made here (0600), as the
// agent would; the token alone goes to stdout, for $(edge-agent console-token).
func cmdConsoleToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return consoleTokenAs(os.Geteuid(), args, stdout, stderr)
}

// consoleTokenAs is cmdConsoleToken run as user euid (tests inject it).
// Run as root (sudo, since the state directory is the agent's and 0700)
// before the agent ever started, it gives what it made to the user that
// owns the directory, or to the service user when it made that directory
// too (pairOwnership): a root-owned 0600 token would be unreadable to the
// agent, and the console would refuse every action beyond loopback.
func consoleTokenAs(euid int, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("console-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: edge-agent console-token [-config FILE]")
		return exitConfig
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	path := console.TokenPath(cfg)
	home := filepath.Dir(path)
	owner, ownerName, err := ownerOf(home)
	if err != nil {
		fmt.Fprintf(stderr, "edge-agent console-token: %v\n", err)
		return exitFatal
	}
	tok, created, err := console.LoadOrCreateToken(path)
	if err != nil {
		fmt.Fprintf(stderr, "edge-agent console-token: %v\n", err)
		return exitFatal
	}
	if created {
		written := []string{path}
		if owner == nil {
			written = []string{home, path} // LoadOrCreateToken made it
		}
		if euid == 0 {
			// Root never gets a refusal: the error case is another user's.
			if to, _ := pairOwnership(euid, owner, ownerName, lookupService(), home, ""); to != nil {
				if err := chownAll(to, written...); err != nil {
					fmt.Fprintf(stderr, "edge-agent console-token: giving %s to the agent's user: %v\n", path, err)
					return exitFatal
				}
			}
		}
		fmt.Fprintf(stderr, "edge-agent console-token: made %s; an agent already running reads it at its next start\n", path)
	}
	fmt.Fprintln(stdout, tok)
	return exitOK
}
