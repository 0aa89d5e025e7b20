package camservertest_test

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
)

// TestSimDemoLink: the demo's config block validates as the loader would
// validate it (password from a 0600 file, CA trusted) and the link
// authorizes against the sim over TLS.
func TestSimDemoLink(t *testing.T) {
	sim, err := camservertest.NewSim("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if sim.Kind() != "camserver" || sim.URLs()["api"] == "" || sim.URLs()["status"] == "" {
		t.Fatalf("kind/urls: %s %v", sim.Kind(), sim.URLs())
	}
	dir := t.TempDir()
	block, err := sim.DemoLink(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := block.(*camserver.Config)
	cfg.SetDefaults()
	v := conf.NewValidator()
	cfg.Validate(v)
	if len(v.Problems()) != 0 || len(v.Warnings()) != 0 {
		t.Fatalf("problems %v warnings %v", v.Problems(), v.Warnings())
	}
	if fi, err := os.Stat(cfg.PasswordFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode: %v %v", fi, err)
	}
	if cfg.SensorNames()["stream.sensor"] != "cam" {
		t.Fatal("demo does not stream cam")
	}
	camCfg := synthetic.Config{Signal: synthetic.SignalCamera}
	camCfg.SetDefaults()
	deps := agenttest.Deps(t, "camserver", agenttest.Hub(t, nil, synthetic.NewCamera("cam", camCfg)), nil)
	deps.Device.Name = "pi-demo"
	l, err := camserver.New(*cfg, deps, camserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
