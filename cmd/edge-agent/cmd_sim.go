package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/sim"
)

func cmdSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1", "host to bind the fakes to (ports are ephemeral)")
	dir := fs.String("config", "", "also write the demo's agent config for these fakes into this directory, for `edge-agent run -config DIR/demo-config.yaml` in another process")
	statusAddr := fs.String("status", "127.0.0.1:0", "with -config: the agent's status address (port 0: a port free now)")
	profile := fs.Bool("pprof", false, "with -config: turn on the agent's profiler (status.pprof)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	log := newLogger(stderr, config.Log{Level: "info", Format: "text"})
	clouds, err := sim.Start(*listen, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFatal
	}
	defer clouds.Close()
	clouds.ModelProgram = demoModelProgram(log)
	enc := json.NewEncoder(stdout)
	for _, s := range clouds.Services {
		_ = enc.Encode(map[string]any{"service": s.Kind(), "urls": s.URLs()})
	}
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFatal
		}
		addr, err := freeAddr(*statusAddr)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFatal
		}
		_, path, err := clouds.WriteDemoConfig(*dir, config.Status{Listen: addr, Pprof: *profile})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFatal
		}
		_ = enc.Encode(map[string]any{"config": path, "status": "http://" + addr + "/"})
	}
	<-ctx.Done()
	return exitOK
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	statusAddr := fs.String("status", "127.0.0.1:8780", "status server address (falls back to a free port when taken)")
	dir := fs.String("dir", "", "working directory for the generated config and state (default: a new temp dir, removed on exit)")
	level := fs.String("log-level", "info", "debug|info|warn|error")
	profile := fs.Bool("pprof", false, "also serve Go's profiler under /debug/pprof/ on the status address")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	log := newLogger(stderr, config.Log{Level: *level, Format: "text"})
	work := *dir
	if work == "" {
		tmp, err := os.MkdirTemp("", "edge-agent-demo-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFatal
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	clouds, err := sim.Start("127.0.0.1", log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFatal
	}
	defer clouds.Close()
	clouds.ModelProgram = demoModelProgram(log)

	ln, err := net.Listen("tcp", *statusAddr)
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFatal
		}
	}
	cfg, path, err := clouds.WriteDemoConfig(work, config.Status{Listen: ln.Addr().String(), Pprof: *profile})
	if err != nil {
		ln.Close()
		fmt.Fprintln(stderr, err)
		return exitFatal
	}
	cfg.Resolve(config.HostMachine(log))
	// The web console is the page at / (agent/console); scripts/rss.sh and
	// TestDemoEndToEnd find the address after "status page".
	fmt.Fprintf(stdout, "edge-agent demo: console and status page http://%s/  (config: %s)\n", ln.Addr(), path)
	for _, s := range clouds.Services {
		b, _ := json.Marshal(s.URLs())
		fmt.Fprintf(stdout, "  fake %-12s %s\n", s.Kind(), b)
	}
	if len(cfg.Rules) > 0 {
		fmt.Fprintf(stdout, "  a visitor walks into the camera every %s: model %q sees it, rule %q records over RTM, uploads the frame to Frame.io and messages the camera server\n",
			sim.DemoVisitorEvery, sim.DemoModelName, sim.DemoRuleName)
	}
	fmt.Fprintln(stdout, "press Ctrl-C to stop")
	return runAgent(ctx, cfg, log, agent.Options{StatusListener: ln}, stderr)
}

// demoModelProgram is this executable, which runs as the demo's model when
// started under a .eim name (main's demoModel), or "" (no model in the
// demo) when it cannot be found.
func demoModelProgram(log *slog.Logger) string {
	exe, err := os.Executable()
	if err != nil {
		log.Warn("demo: no model (this executable cannot be found)", "err", err)
		return ""
	}
	return exe
}

// freeAddr resolves port 0 in addr to a port free now, so that the config
// written for another process names a port its status server can take.
func freeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("status address: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
