package infer

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

func versioned(v int) map[string]any {
	p := project()
	p["deploy_version"] = v
	return p
}

// lastMessage returns the newest message of type typ the device sent.
func lastMessage(srv *eitest.Server, typ string) (eitest.Message, bool) {
	ms := srv.Messages()
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Type == typ {
			return ms[i], true
		}
	}
	return eitest.Message{}, false
}

func count(srv *eitest.Server, typ string) int {
	n := 0
	for _, m := range srv.Messages() {
		if m.Type == typ {
			n++
		}
	}
	return n
}

// TestMonitorOverEdgeImpulse runs the whole path: the model downloaded from
// the fake Studio for the key's project, the link announcing it (Hello
// version 4, inference mode), results streamed to Studio on request, and a
// newModelAvailable that downloads, hash-checks and swaps the new model in.
func TestMonitorOverEdgeImpulse(t *testing.T) {
	srv, err := eitest.New(eitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	v1 := srv.SetDeployment(Target(), fakeModel(t, fakeConfig{Project: versioned(1),
		Params: motionParams(1, 4, 100, "idle", "wave"), Split: []float64{5}}))

	h := hub.New(hub.Options{Restart: retry.Policy{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
	t.Cleanup(h.Close)
	feed := newFeed(motionInfo(100, 1))
	if err := h.Add(feed); err != nil {
		t.Fatal(err)
	}
	cfg := edgeimpulse.Config{APIKey: srv.APIKey(), RemoteMgmtURL: srv.WSURL(), IngestionURL: srv.IngestionURL(),
		StudioURL: srv.IngestionURL(), Sensors: []string{"accel"},
		PingInterval: conf.Duration(time.Second), PongTimeout: conf.Duration(5 * time.Second)}
	studio, err := edgeimpulse.NewStudio(cfg, edgeimpulse.StudioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	models, err := NewModels(ModelsOptions{Studio: studio, Dir: cache})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); models.Run(ctx, 0) }()
	t.Cleanup(func() { cancel(); <-done })
	st := NewStream(h, models, StreamOptions{Name: "gesture", Sensor: "accel", Interval: 40 * time.Millisecond,
		Process: ProcessOptions{RuntimeDir: t.TempDir()}})
	if err := h.Add(st); err != nil {
		t.Fatal(err)
	}
	keep, err := h.Subscribe("gesture", sensors.SubscribeOptions{Queue: 64, Label: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keep.Close)
	go func() {
		for range keep.C() { // the agent's own subscription keeps the model running
		}
	}()

	deps := agenttest.Deps(t, "ei", h, nil)
	deps.Spool = agenttest.Spool(t, spool.Options{})
	link, err := edgeimpulse.New(cfg, deps, edgeimpulse.Options{})
	if err != nil {
		t.Fatal(err)
	}
	link.SetMonitor(st)
	agenttest.RunLink(t, "edgeimpulse", link, deps)

	wait := func(what string, cond func() bool) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(context.Background(), agenttest.Patience)
		defer wcancel()
		if err := srv.Wait(wctx, cond); err != nil {
			t.Fatalf("%s: %v (device sent %v; stream %+v)", what, err, srv.MessageTypes(0), st.Status())
		}
	}
	// Once the model runs, the link announces it (reconnecting if its
	// first Hello came before the download).
	wait("a version-4 Hello announcing the model", func() bool {
		hs := srv.Hellos()
		if len(hs) == 0 || !srv.Connected() {
			return false
		}
		f := hs[len(hs)-1].Fields
		info, _ := f["inferenceInfo"].(map[string]any)
		return f["version"] == 4.0 && f["mode"] == "inference" && info["projectId"] == 42.0 &&
			info["deploymentVersion"] == float64(v1) && info["modelType"] == "classification"
	})

	if err := srv.StartInferenceStream(); err != nil {
		t.Fatal(err)
	}
	wait("inferenceStreamStarted", func() bool {
		m, ok := lastMessage(srv, "inferenceStreamStarted")
		return ok && m.Fields["inferenceStreamStarted"] == true
	})
	for i := range 4 {
		feed.feed <- sensors.Sample{Class: sensors.Motion, Values: []float64{9}, Seq: uint64(i), Time: time.Now()}
	}
	wait("an impulseRecord", func() bool { return count(srv, "impulseRecord") > 0 })
	rec, _ := lastMessage(srv, "impulseRecord")
	ir, _ := rec.Fields["impulseRecord"].(map[string]any)
	res, _ := ir["result"].(map[string]any)
	cls, _ := res["classification"].(map[string]any)
	if cls["wave"] != 0.9 || rec.Fields["index"] != 0.0 || rec.Fields["timestamp"] == nil || rec.Fields["rawData"] != nil {
		t.Fatalf("impulseRecord %v", rec.Fields)
	}
	if err := srv.StopInferenceStream(); err != nil {
		t.Fatal(err)
	}
	wait("inferenceStreamStopped", func() bool { return count(srv, "inferenceStreamStopped") == 1 })

	// A new deployment: downloaded, checked and swapped in.
	b := fakeModel(t, fakeConfig{Project: versioned(2), Params: motionParams(1, 4, 100, "rest", "shake")})
	v2 := srv.SetDeployment(Target(), b)
	if err := srv.NewModelAvailable(v2); err != nil {
		t.Fatal(err)
	}
	wait("modelUpdateSuccess", func() bool { return count(srv, "modelUpdateSuccess") == 1 })
	up, _ := lastMessage(srv, "modelUpdateSuccess")
	info, _ := up.Fields["inferenceInfo"].(map[string]any)
	if up.Fields["modelUpdateSuccess"] != true || info["deploymentVersion"] != float64(v2) {
		t.Fatalf("modelUpdateSuccess %v", up.Fields)
	}
	if axes := st.Info().Axes; !slices.Equal(axes, []string{"rest", "shake"}) {
		t.Fatalf("axes %v after the update", axes)
	}
	if f := st.Status().File; f.SHA256 != sum(b) || filepath.Dir(f.Path) != cache {
		t.Fatalf("running %+v, want the new deployment from the cache", f)
	}

	// A deployment that cannot start is reported as a failed update.
	v3 := srv.SetDeployment(Target(), fakeModel(t, fakeConfig{Project: versioned(3), Params: motionParams(1, 4, 100, "x"), FailStart: true}))
	if err := srv.NewModelAvailable(v3); err != nil {
		t.Fatal(err)
	}
	wait("a failed update", func() bool { return count(srv, "modelUpdateSuccess") == 2 })
	up, _ = lastMessage(srv, "modelUpdateSuccess")
	if e, _ := up.Fields["error"].(string); up.Fields["modelUpdateSuccess"] != false || !strings.Contains(e, "failing at start") {
		t.Fatalf("modelUpdateSuccess %v", up.Fields)
	}
}
