package edgeimpulse_test

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// fakeMonitor is an on-device model as the link sees it.
type fakeMonitor struct {
	mu      sync.Mutex
	info    edgeimpulse.InferenceInfo
	ok      bool
	loaded  chan struct{}
	updates int
	update  func(context.Context) (edgeimpulse.InferenceInfo, error)
}

func (m *fakeMonitor) Results() string { return "model" }

func (m *fakeMonitor) InferenceInfo() (edgeimpulse.InferenceInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info, m.ok
}

func (m *fakeMonitor) Loaded() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loaded
}

func (m *fakeMonitor) load(info edgeimpulse.InferenceInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.info, m.ok = info, true
	close(m.loaded)
	m.loaded = make(chan struct{})
}

func (m *fakeMonitor) UpdateModel(ctx context.Context) (edgeimpulse.InferenceInfo, error) {
	m.mu.Lock()
	m.updates++
	f := m.update
	m.mu.Unlock()
	return f(ctx)
}

// resultSource is the model's results on the hub: what the test sends.
type resultSource struct{ feed chan sensors.Sample }

func (r *resultSource) Info() sensors.Info {
	return sensors.Info{Name: "model", Kind: "eim", Class: sensors.Inference, Axes: []string{"cat", "dog"}}
}

func (r *resultSource) Run(ctx context.Context, out chan<- sensors.Sample) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-r.feed:
			select {
			case out <- s:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

type monRig struct {
	t   *testing.T
	srv *eitest.Server
	res *resultSource
}

// newMonRig runs a link offering a camera, with m attached (nil: none).
func newMonRig(t *testing.T, m edgeimpulse.Monitor) *monRig {
	t.Helper()
	srv, err := eitest.New(eitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cc := synthetic.Config{Signal: "camera"}
	cc.SetDefaults()
	res := &resultSource{feed: make(chan sensors.Sample, 8)}
	h := agenttest.Hub(t, nil, synthetic.NewCamera("cam", cc), res)
	deps := agenttest.Deps(t, "ei", h, nil)
	deps.Spool = agenttest.Spool(t, spool.Options{})
	cfg := edgeimpulse.Config{APIKey: srv.APIKey(), RemoteMgmtURL: srv.WSURL(), IngestionURL: srv.IngestionURL(),
		Sensors: []string{"cam"}, PingInterval: conf.Duration(time.Second), PongTimeout: conf.Duration(5 * time.Second)}
	link, err := edgeimpulse.New(cfg, deps, edgeimpulse.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m != nil {
		link.SetMonitor(m)
	}
	agenttest.RunLink(t, "edgeimpulse", link, deps)
	r := &monRig{t: t, srv: srv, res: res}
	r.wait("connected", srv.Connected)
	return r
}

func (r *monRig) wait(what string, cond func() bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), agenttest.Patience)
	defer cancel()
	if err := r.srv.Wait(ctx, cond); err != nil {
		r.t.Fatalf("%s: %v (device sent %v)", what, err, r.srv.MessageTypes(0))
	}
}

func (r *monRig) last(typ string) map[string]any {
	ms := r.srv.Messages()
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Type == typ {
			return ms[i].Fields
		}
	}
	return nil
}

func (r *monRig) count(typ string) int {
	n := 0
	for _, m := range r.srv.Messages() {
		if m.Type == typ {
			n++
		}
	}
	return n
}

func TestMonitorWithoutModel(t *testing.T) {
	r := newMonRig(t, nil)
	if h := r.srv.Hellos(); h[len(h)-1].Fields["version"] != 3.0 || h[len(h)-1].Fields["mode"] != nil {
		t.Fatalf("hello %v", h[len(h)-1].Fields)
	}
	_ = r.srv.StartInferenceStream()
	r.wait("inferenceStreamStarted", func() bool { return r.last("inferenceStreamStarted") != nil })
	if f := r.last("inferenceStreamStarted"); f["inferenceStreamStarted"] != false {
		t.Fatalf("%v", f)
	}
	_ = r.srv.Send(map[string]any{"impulseRecordRequest": map[string]any{"index": 0}})
	r.wait("impulseRecordsResponse", func() bool { return r.last("impulseRecordsResponse") != nil })
	if f := r.last("impulseRecordsResponse"); f["impulseRecordsResponse"] != false || f["error"] == nil {
		t.Fatalf("%v", f)
	}
	_ = r.srv.NewModelAvailable(3) // ignored: nothing to update
	_ = r.srv.StopInferenceStream()
	r.wait("inferenceStreamStopped", func() bool { return r.last("inferenceStreamStopped") != nil })
	if r.count("modelUpdateSuccess") != 0 {
		t.Fatal("a model update answered without a model")
	}
}

func TestMonitorStreamsResults(t *testing.T) {
	info := edgeimpulse.InferenceInfo{ProjectID: 5, ProjectOwner: "o", ProjectName: "pets", DeploymentVersion: 9, ModelType: "classification"}
	m := &fakeMonitor{info: info, ok: true, loaded: make(chan struct{})}
	r := newMonRig(t, m)
	h := r.srv.Hellos()
	f := h[len(h)-1].Fields
	ii, _ := f["inferenceInfo"].(map[string]any)
	recs, _ := f["availableRecords"].(map[string]any)
	if f["version"] != 4.0 || f["mode"] != "inference" || ii["projectId"] != 5.0 || ii["projectName"] != "pets" ||
		ii["deploymentVersion"] != 9.0 || recs["lastIndex"] != 0.0 || f["supportsSnapshotStreaming"] != true {
		t.Fatalf("hello %v", f)
	}
	_ = r.srv.StartInferenceStream()
	r.wait("inferenceStreamStarted", func() bool { return r.last("inferenceStreamStarted") != nil })
	jpg := []byte{0xff, 0xd8, 0xff, 0xe0, 1, 2, 3}
	at := time.UnixMilli(1_700_000_000_123)
	r.res.feed <- sensors.Sample{Class: sensors.Inference, Time: at, Values: []float64{0.2, 0.8},
		Data: []byte(`{"result":{"classification":{"cat":0.2,"dog":0.8}},"timing":{"dsp":1,"classification":4,"anomaly":0}}`), Input: jpg}
	pcm := []byte{1, 0, 2, 0}
	r.res.feed <- sensors.Sample{Class: sensors.Inference, Time: at, Data: []byte(`{"result":{"anomaly":1.5},"timing":{"dsp":1,"classification":1,"anomaly":1}}`), Input: pcm}
	r.wait("two records", func() bool { return r.count("impulseRecord") == 2 })
	var got []map[string]any
	for _, msg := range r.srv.Messages() {
		if msg.Type == "impulseRecord" {
			got = append(got, msg.Fields)
		}
	}
	rec, _ := got[0]["impulseRecord"].(map[string]any)
	res, _ := rec["result"].(map[string]any)
	cls, _ := res["classification"].(map[string]any)
	raw, _ := got[0]["rawData"].(map[string]any)
	if cls["dog"] != 0.8 || got[0]["timestamp"] != 1700000000123.0 || got[0]["index"] != 0.0 ||
		raw["type"] != "jpg" || raw["bufferBase64"] != base64.StdEncoding.EncodeToString(jpg) {
		t.Fatalf("first record %v", got[0])
	}
	raw, _ = got[1]["rawData"].(map[string]any)
	if got[1]["index"] != 1.0 || raw["type"] != "wav" || raw["bufferBase64"] != base64.StdEncoding.EncodeToString(pcm) {
		t.Fatalf("second record %v", got[1])
	}
	// Studio refusing a record stops the stream, as in the reference client.
	_ = r.srv.Send(map[string]any{"impulseRecordAck": false, "index": 1, "error": "quota"})
	r.wait("inferenceStreamStopped", func() bool { return r.count("inferenceStreamStopped") == 1 })
	r.res.feed <- sensors.Sample{Class: sensors.Inference, Time: at, Data: []byte(`{"result":{}}`)}
	_ = r.srv.StopInferenceStream() // answered even without a stream
	r.wait("inferenceStreamStopped again", func() bool { return r.count("inferenceStreamStopped") == 2 })
	if r.count("impulseRecord") != 2 {
		t.Fatal("a record was sent after the stream stopped")
	}
}

func TestMonitorModelUpdate(t *testing.T) {
	info := edgeimpulse.InferenceInfo{ProjectID: 5, DeploymentVersion: 9, ModelType: "object_detection"}
	m := &fakeMonitor{info: info, ok: true, loaded: make(chan struct{})}
	fail := errors.New("the new model does not run: exit status 1")
	m.update = func(context.Context) (edgeimpulse.InferenceInfo, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.updates == 2 {
			return edgeimpulse.InferenceInfo{}, fail
		}
		m.info.DeploymentVersion = 10
		return m.info, nil
	}
	r := newMonRig(t, m)
	_ = r.srv.NewModelAvailable(10)
	r.wait("modelUpdateSuccess", func() bool { return r.count("modelUpdateSuccess") == 1 })
	f := r.last("modelUpdateSuccess")
	ii, _ := f["inferenceInfo"].(map[string]any)
	if f["modelUpdateSuccess"] != true || ii["deploymentVersion"] != 10.0 || ii["modelType"] != "object_detection" {
		t.Fatalf("%v", f)
	}
	_ = r.srv.NewModelAvailable(11)
	r.wait("a failed update", func() bool { return r.count("modelUpdateSuccess") == 2 })
	if f := r.last("modelUpdateSuccess"); f["modelUpdateSuccess"] != false || f["error"] != fail.Error() {
		t.Fatalf("%v", f)
	}
}

// TestMonitorModelUpdateDuringAnUpdate: a newModelAvailable that comes
// while an update runs is answered too, by one more update once the first
// ends (before, it was dropped unanswered; and one that came between the
// first's answer and its end was dropped the same way, which made
// TestMonitorModelUpdate fail now and then).
func TestMonitorModelUpdateDuringAnUpdate(t *testing.T) {
	info := edgeimpulse.InferenceInfo{ProjectID: 5, DeploymentVersion: 9, ModelType: "classification"}
	m := &fakeMonitor{info: info, ok: true, loaded: make(chan struct{})}
	started, release := make(chan struct{}, 4), make(chan struct{})
	m.update = func(ctx context.Context) (edgeimpulse.InferenceInfo, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return edgeimpulse.InferenceInfo{}, ctx.Err()
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.info.DeploymentVersion = 9 + m.updates
		return m.info, nil
	}
	r := newMonRig(t, m)
	_ = r.srv.NewModelAvailable(10)
	select {
	case <-started:
	case <-time.After(agenttest.Patience):
		t.Fatal("no update started")
	}
	_ = r.srv.NewModelAvailable(11)
	// The link reads in order: once it answered this, it has seen the
	// second newModelAvailable, while the first update still runs.
	_ = r.srv.StopInferenceStream()
	r.wait("inferenceStreamStopped", func() bool { return r.count("inferenceStreamStopped") == 1 })
	if n := r.count("modelUpdateSuccess"); n != 0 {
		t.Fatalf("%d answers while the update runs", n)
	}
	close(release)
	r.wait("both requests answered", func() bool { return r.count("modelUpdateSuccess") == 2 })
	ii, _ := r.last("modelUpdateSuccess")["inferenceInfo"].(map[string]any)
	if ii["deploymentVersion"] != 11.0 {
		t.Errorf("the second answer announces %v, want the update after the first (version 11)", ii["deploymentVersion"])
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.updates != 2 {
		t.Errorf("%d updates, want 2", m.updates)
	}
}

// TestMonitorAnnouncesALateModel: a link whose Hello came before the model
// ran reconnects once it runs, to announce it.
func TestMonitorAnnouncesALateModel(t *testing.T) {
	m := &fakeMonitor{loaded: make(chan struct{})}
	r := newMonRig(t, m)
	if h := r.srv.Hellos(); h[len(h)-1].Fields["version"] != 3.0 {
		t.Fatalf("hello before the model: %v", h[len(h)-1].Fields)
	}
	m.load(edgeimpulse.InferenceInfo{ProjectID: 5, DeploymentVersion: 2, ModelType: "classification"})
	// The newest Hello, not the second: on a loaded machine a session may
	// also end on a missed pong before the model loads, adding a version-3
	// Hello in between.
	r.wait("a version-4 Hello", func() bool {
		h := r.srv.Hellos()
		return len(h) >= 2 && h[len(h)-1].Fields["version"] == 4.0 && r.srv.Connected()
	})
}
