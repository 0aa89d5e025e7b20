package eitest

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/upload/spool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSimDemo plays the demo in-process: the sim's DemoLink config (after
// SetDefaults/Validate, as the agent does) drives a real link over the demo's
// sensors, and the scripted Studio's requests end as verified uploads.
func TestSimDemo(t *testing.T) {
	sim, err := newSim("127.0.0.1:0", nil, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() }) // after the link (cleanups run last first)
	if sim.Kind() != "edgeimpulse" || sim.URLs()["remote_mgmt"] != sim.WSURL() {
		t.Fatalf("kind %s urls %v", sim.Kind(), sim.URLs())
	}
	secrets := t.TempDir()
	block, err := sim.DemoLink(secrets)
	if err != nil {
		t.Fatal(err)
	}
	cfg := block.(*edgeimpulse.Config)
	if fi, err := os.Stat(cfg.APIKeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", fi, err)
	}
	cfg.SetDefaults()
	v := conf.NewValidator()
	cfg.Validate(v)
	if len(v.Problems()) > 0 {
		t.Fatalf("demo config problems: %v", v.Problems())
	}
	cfg.PingInterval = conf.Duration(200 * time.Millisecond)

	var srcs []sensors.Source
	for _, sc := range []synthetic.Config{{Signal: "motion", Frequencies: []float64{100, 62.5}}, {Signal: "audio"}, {Signal: "camera", FPS: 5}} {
		sc.SetDefaults()
		name := map[string]string{"motion": "accel", "audio": "mic", "camera": "cam"}[sc.Signal]
		src, err := synthetic.New(name, sc, sensors.Env{})
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	deps := agenttest.Deps(t, "edgeimpulse", agenttest.Hub(t, nil, srcs...), nil)
	deps.Spool = agenttest.Spool(t, spool.Options{})
	deps.Device = transport.Device{ID: "02:00:00:00:00:01", Type: "EDGE_AGENT_DEMO"}
	link, err := edgeimpulse.New(*cfg, deps, edgeimpulse.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sup := agenttest.RunLink(t, "edgeimpulse", link, deps)

	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	// One sample per sensor: motion, audio, camera, all stored.
	err = sim.Wait(wctx, func() bool {
		ok := map[string]bool{}
		for _, u := range sim.Uploads() {
			if u.Status != 200 {
				continue
			}
			switch {
			case u.File != nil && u.File.Width == 3:
				ok["motion"] = true
			case u.File != nil && u.File.Width == 1:
				ok["audio"] = true
			case u.ImageWidth == 320:
				ok["camera"] = true
			}
		}
		return len(ok) == 3
	})
	if err != nil {
		t.Fatalf("%v; uploads %+v; messages %v", err, sim.Uploads(), sim.MessageTypes(0))
	}
	if st := sup.Status(); st.State != supervisor.Up {
		t.Errorf("link state %s", st.State)
	}
}
