package infer

import (
	"context"
	"encoding/json"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// feedSource forwards what the test puts on feed; Seq counts on across
// runs, so a restart is no gap.
type feedSource struct {
	info sensors.Info
	feed chan sensors.Sample
}

func newFeed(info sensors.Info) *feedSource {
	return &feedSource{info: info, feed: make(chan sensors.Sample, 64)}
}

func (f *feedSource) Info() sensors.Info { return f.info }

func (f *feedSource) Run(ctx context.Context, out chan<- sensors.Sample) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-f.feed:
			select {
			case out <- s:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// rig is a hub with one input sensor and a stream on it, subscribed.
type rig struct {
	t      *testing.T
	hub    *hub.Hub
	in     *feedSource
	stream *Stream
	models *Models
	res    sensors.Subscription
	seq    uint64
}

func newRig(t *testing.T, in sensors.Info, modelPath string, o StreamOptions) *rig {
	t.Helper()
	h := hub.New(hub.Options{Restart: retry.Policy{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
	t.Cleanup(h.Close)
	feed := newFeed(in)
	if err := h.Add(feed); err != nil {
		t.Fatal(err)
	}
	models, err := NewModels(ModelsOptions{Path: modelPath})
	if err != nil {
		t.Fatal(err)
	}
	o.Name, o.Sensor = "model", in.Name
	o.Process.RuntimeDir = t.TempDir()
	st := NewStream(h, models, o)
	if err := h.Add(st); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("model", sensors.SubscribeOptions{Queue: 64, Policy: sensors.NoDrop, Label: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	r := &rig{t: t, hub: h, in: feed, stream: st, models: models, res: sub}
	agenttest.Eventually(t, "the model runs", func() bool { return st.Status().State == StateRunning })
	return r
}

func (r *rig) send(s sensors.Sample) {
	s.Seq = r.seq
	r.seq++
	r.in.feed <- s
}

func (r *rig) sendRows(v float64, n, axes int) {
	for range n {
		row := make([]float64, axes)
		for i := range row {
			row[i] = v
		}
		r.send(sensors.Sample{Class: sensors.Motion, Values: row, Time: time.Now()})
	}
}

// next returns the next result.
func (r *rig) next() sensors.Sample {
	r.t.Helper()
	select {
	case s, ok := <-r.res.C():
		if !ok {
			r.t.Fatal("results closed")
		}
		return s
	case <-time.After(agenttest.Patience):
		r.t.Fatalf("no result; stream status %+v", r.stream.Status())
	}
	return sensors.Sample{}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func label(s sensors.Sample, axes []string) string {
	i := 0
	for k, v := range s.Values {
		if v > s.Values[i] {
			i = k
		}
	}
	return axes[i]
}

func TestStreamMotion(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	path := writeModel(t, t.TempDir(), "m.eim", fakeConfig{Project: project(),
		Params: motionParams(3, 4, 100, "still", "moving"), Split: []float64{5}, Log: log})
	r := newRig(t, motionInfo(100, 3), path, StreamOptions{Interval: 40 * time.Millisecond})
	r.sendRows(1, 4, 3)
	res := r.next()
	axes := r.stream.Info().Axes
	if !slices.Equal(axes, []string{"still", "moving"}) || r.stream.Info().Class != sensors.Inference {
		t.Fatalf("info %+v", r.stream.Info())
	}
	if res.Class != sensors.Inference || len(res.Values) != 2 || res.Values[0] != 0.9 || !near(res.Values[1], 0.1) || res.Input != nil {
		t.Fatalf("result %+v", res)
	}
	var doc struct {
		Result Result `json:"result"`
		Timing Timing `json:"timing"`
	}
	if err := json.Unmarshal(res.Data, &doc); err != nil || doc.Result.Classification["still"] != 0.9 || doc.Timing.Classification != 2 {
		t.Fatalf("data %s: %v", res.Data, err)
	}
	r.sendRows(9, 4, 3)
	if res := r.next(); label(res, axes) != "moving" {
		t.Fatalf("constant 9: %v", res.Values)
	}
	got := readLog(t, log)
	want := [][]float64{slices.Repeat([]float64{1}, 12), slices.Repeat([]float64{9}, 12)}
	if len(got) != 2 || !slices.Equal(got[0].Features, want[0]) || !slices.Equal(got[1].Features, want[1]) {
		t.Fatalf("the model saw %+v", got)
	}
	st := r.stream.Status()
	if st.Counts["classifications"] != 2 || st.Counts["starts"] != 1 || st.Latency.Count != 2 ||
		st.Model == nil || st.Model.Project.ID != 42 || st.Source != "file" || st.File.SHA256 == "" {
		t.Fatalf("status %+v", st)
	}
	if len(st.Labels) != 2 || st.Labels[0].Label != "still" || st.Labels[0].Count != 1 || !near(st.Labels[0].LastScore, 0.1) ||
		st.Labels[1] != (LabelStat{"moving", 1, 0.9}) {
		t.Fatalf("labels %+v", st.Labels)
	}
}

func TestStreamAudioTone(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	path := writeModel(t, t.TempDir(), "kws.eim", fakeConfig{Project: project(),
		Params: audioParams(16000, 4000, 16000, true, "quiet", "loud"), Split: []float64{100}, Log: log})
	r := newRig(t, sensors.Info{Name: "mic", Class: sensors.Audio, Rate: 16000, Channels: 1}, path, StreamOptions{})
	// 1.5 s of a tone offset by +200: the slices' mean is 200 ± the
	// tone's partial period, above the split.
	pcm := tone(0, 24000, 500, 16000)
	for i := range pcm {
		pcm[i] += 200
	}
	for _, b := range pcmBlocks(pcm, 320) {
		r.send(b)
	}
	for k := 0; k < 3; k++ {
		res := r.next()
		if label(res, r.stream.Info().Axes) != "loud" || len(res.Input) != 32000 || res.Duration != time.Second {
			t.Fatalf("result %d: %v, %d bytes of input, %v", k, res.Values, len(res.Input), res.Duration)
		}
	}
	got := readLog(t, log)
	if len(got) != 3 {
		t.Fatalf("%d requests", len(got))
	}
	for k, req := range got {
		end := 16000 + 4000*k
		want := toFloats(pcm[end-4000 : end])
		if !req.Continuous || len(req.Features) != 4000 {
			t.Fatalf("request %d: continuous %v, %d features", k, req.Continuous, len(req.Features))
		}
		for i := range want {
			if float32(req.Features[i]) != want[i] {
				t.Fatalf("request %d, sample %d: %v, want %v", k, i, req.Features[i], want[i])
			}
		}
	}
}

func TestStreamImageColour(t *testing.T) {
	for _, mt := range []string{"classification", "object_detection"} {
		t.Run(mt, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "log")
			path := writeModel(t, t.TempDir(), "cam.eim", fakeConfig{Project: project(),
				Params: imageParams(96, 96, 3, "fit-shortest", mt, "dark", "bright"), Split: []float64{0x800000}, Log: log})
			r := newRig(t, sensors.Info{Name: "cam", Class: sensors.Still, Width: 320, Height: 240, Rate: 5}, path, StreamOptions{})
			frame := solidJPEG(t, 320, 240, color.RGBA{200, 40, 90, 255})
			rgb, _ := decodedColour(t, frame)
			r.send(sensors.Sample{Class: sensors.Still, Data: frame, Time: time.Now()})
			res := r.next()
			if label(res, r.stream.Info().Axes) != "bright" || string(res.Input) != string(frame) {
				t.Fatalf("result %v", res.Values)
			}
			if mt == "object_detection" && (res.Values[0] != 0 || res.Values[1] != 0.9) {
				t.Fatalf("detection scores %v, want the best box per label", res.Values)
			}
			got := readLog(t, log)
			if len(got) != 1 || len(got[0].Features) != 96*96 {
				t.Fatalf("requests %d", len(got))
			}
			for i, f := range got[0].Features {
				if uint32(f) != rgb {
					t.Fatalf("pixel %d = %#06x, want %#06x", i, uint32(f), rgb)
				}
			}
		})
	}
}

// TestStreamSwap: a replaced model takes over between two classifications;
// the one in progress finishes on the old model.
func TestStreamSwap(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	path := writeModel(t, dir, "m.eim", fakeConfig{Project: project(), Params: motionParams(1, 4, 100, "x", "y"),
		Log: log, DelayMS: 200})
	r := newRig(t, motionInfo(100, 1), path, StreamOptions{Interval: 40 * time.Millisecond})
	r.sendRows(1, 4, 1)
	agenttest.Eventually(t, "the classification started", func() bool { return len(readLog(t, log)) == 1 })
	// Replace the file as a deploy would (rename over it) while the old
	// model is answering.
	p2 := fakeConfig{Project: map[string]any{"id": 42, "owner": "tester", "name": "fake project", "deploy_version": 8},
		Params: motionParams(1, 4, 100, "p", "q")}
	tmp := writeModel(t, dir, "m.new", p2)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := r.models.Update(context.Background()); err != nil || !changed {
		t.Fatalf("update: changed %v, %v", changed, err)
	}
	if res := r.next(); !strings.Contains(string(res.Data), `"x":`) {
		t.Fatalf("the classification in progress was not answered by the old model: %s", res.Data)
	}
	agenttest.Eventually(t, "the new model runs", func() bool {
		info, ok := r.stream.InferenceInfo()
		return ok && info.DeploymentVersion == 8
	})
	r.sendRows(1, 4, 1)
	r.next()
	if axes := r.stream.Info().Axes; !slices.Equal(axes, []string{"p", "q"}) {
		t.Fatalf("axes %v after the swap", axes)
	}
	if st := r.stream.Status(); st.Counts["starts"] != 2 || st.Counts["crashes"] != 0 {
		t.Fatalf("counts %v", st.Counts)
	}
}

// TestStreamRecovers: a model that crashes, hangs or answers garbage ends
// the stream's run; the hub starts it again and results flow.
func TestStreamRecovers(t *testing.T) {
	for _, tc := range []struct {
		name, count, text string
		cfg               fakeConfig
	}{
		{"crash", "crashes", "crashing as configured", fakeConfig{CrashAfter: 2}},
		{"hang", "timeouts", "no answer within", fakeConfig{HangAfter: 2}},
		{"garbage", "garbage", "garbage answer", fakeConfig{GarbageAfter: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Project, tc.cfg.Params = project(), motionParams(1, 4, 100, "a", "b")
			path := writeModel(t, t.TempDir(), "m.eim", tc.cfg)
			r := newRig(t, motionInfo(100, 1), path, StreamOptions{Interval: 40 * time.Millisecond, Timeout: 300 * time.Millisecond})
			r.sendRows(1, 4, 1)
			r.next()
			r.sendRows(1, 4, 1) // the second classification fails
			agenttest.Eventually(t, "the failure is counted and reported", func() bool {
				st := r.stream.Status()
				return st.Counts[tc.count] == 1 && strings.Contains(st.LastError, tc.text)
			})
			agenttest.Eventually(t, "the model runs again", func() bool {
				st := r.stream.Status()
				return st.State == StateRunning && st.Counts["starts"] == 2
			})
			r.sendRows(1, 4, 1)
			r.next()
			for _, s := range r.hub.Stats() {
				if s.Name == "model" && s.Restarts != 1 {
					t.Fatalf("hub restarts %d", s.Restarts)
				}
			}
		})
	}
}

// TestStreamRefusalsContinue: a model that refuses an input is still in
// step; the stream counts it and goes on with the same process.
func TestStreamRefusalsContinue(t *testing.T) {
	path := writeModel(t, t.TempDir(), "m.eim", fakeConfig{Project: project(), Params: motionParams(1, 4, 100, "a"), RefuseAfter: 1})
	r := newRig(t, motionInfo(100, 1), path, StreamOptions{Interval: 40 * time.Millisecond})
	r.sendRows(1, 8, 1)
	agenttest.Eventually(t, "two refusals", func() bool { return r.stream.Status().Counts["model_errors"] == 2 })
	if st := r.stream.Status(); st.Counts["starts"] != 1 || st.State != StateRunning || !strings.Contains(st.LastError, "-5") {
		t.Fatalf("status %+v", st)
	}
}

func TestStreamMismatch(t *testing.T) {
	path := writeModel(t, t.TempDir(), "m.eim", fakeConfig{Project: project(), Params: imageParams(96, 96, 3, "squash", "classification", "a")})
	h := hub.New(hub.Options{})
	t.Cleanup(h.Close)
	if err := h.Add(newFeed(motionInfo(100, 3))); err != nil {
		t.Fatal(err)
	}
	models, _ := NewModels(ModelsOptions{Path: path})
	st := NewStream(h, models, StreamOptions{Name: "model", Sensor: "accel", Process: ProcessOptions{RuntimeDir: t.TempDir()}})
	if err := h.Add(st); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("model", sensors.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	agenttest.Eventually(t, "the mismatch is reported", func() bool {
		s := st.Status()
		return s.State == StateFailed && strings.Contains(s.LastError, "needs a still sensor")
	})
}
