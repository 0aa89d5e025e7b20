// Command edge-agent is the daemon and its tools: run, check-config, version,
// sensors, sample, infer, pair, console-token, sim and demo. Their names,
// flags and exit codes are part of the user-facing contract
// (docs/DESIGN.md); the config file is docs/CONFIG.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/edge-agent/edge-agent/agent/infer/eimfake"
)

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run [-config FILE]            run the daemon", cmdRun},
		{"check-config", "check-config FILE             validate a config file", cmdCheckConfig},
		{"version", "version                       print version and build details", cmdVersion},
		{"sensors", "sensors [-json]               list the sensors this board has", cmdSensors},
		{"sample", "sample -sensor NAME -seconds N [-config FILE] [-o FILE]   capture locally", cmdSample},
		{"infer", "infer -model FILE -sensor NAME [-config FILE] [-n N] [-json]   run an Edge Impulse model on a sensor, printing its results", cmdInfer},
		{"pair", "pair [-config FILE] [-link NAME]   pair with Frame.io", cmdPair},
		{"console-token", "console-token [-config FILE]  print the web console's token (made 0600 if absent)", cmdConsoleToken},
		{"sim", "sim [-listen 127.0.0.1] [-config DIR [-status ADDR] [-pprof]]  run the fake clouds on loopback (and write the agent config for them)", cmdSim},
		{"demo", "demo                          run the fake clouds and the agent together", cmdDemo},
	}
}

func main() {
	if code, ok := demoModel(); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// demoModel runs this program as the demo's model when it was started
// under a name ending in ".eim" and carries a model trailer: `edge-agent
// demo` writes such a copy of itself (agent/sim's WriteDemoModel), so the
// demo shows a model driving a rule without shipping a trained model.
// Every other start (a plain edge-agent, or a .eim name without the
// trailer) returns ok false.
func demoModel() (code int, ok bool) {
	if !strings.HasSuffix(os.Args[0], ".eim") {
		return 0, false
	}
	exe, err := os.Executable()
	if err != nil || !eimfake.HasTrailer(exe) {
		return 0, false
	}
	return eimfake.Main(os.Args, exe), true
}

// hangups subscribes to SIGHUP, which `systemctl reload` sends (the unit's
// ExecReload): only `run` asks for it, so every other command keeps the
// default action (a hung-up terminal ends it). stop unsubscribes.
func hangups() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1) // a reload asked for during a reload is kept, more are one
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	stdout, stderr = lockWriters(stdout, stderr)
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	// The systemd unit and STYLE's habit use flags: -config FILE means run,
	// -check-config FILE and -version the commands of those names.
	switch name {
	case "-config", "--config":
		name, args = "run", append([]string{"run"}, args...)
	case "-check-config", "--check-config":
		name = "check-config"
	case "-version", "--version":
		name = "version"
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "edge-agent: unknown command %q\n", name)
	usage(stderr)
	return 2
}

// lockWriters makes the command's output writers safe for concurrent use:
// a command's own output (progress lines) and its loggers' goroutines (the
// hub, links) write at the same time. When both are one writer, one lock
// serialises both.
func lockWriters(stdout, stderr io.Writer) (io.Writer, io.Writer) {
	out := &lockedWriter{w: stdout}
	if stderr == stdout {
		return out, out
	}
	return out, &lockedWriter{w: stderr}
}

// fileOf returns the *os.File behind w, looking through lockedWriter, so a
// command can still tell whether it writes to a terminal.
func fileOf(w io.Writer) (*os.File, bool) {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	return f, ok
}

// isTerminal reports whether w writes to a terminal, where a progress bar or
// a countdown redrawn in place is readable.
func isTerminal(w io.Writer) bool {
	f, ok := fileOf(w)
	return ok && term.IsTerminal(int(f.Fd()))
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: edge-agent <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintln(w, "  "+c.usage)
	}
}
