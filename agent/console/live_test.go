package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/console"
	"github.com/edge-agent/edge-agent/sensors"
)

// TestMJPEGPreview: the preview is multipart/x-mixed-replace of the
// camera's JPEGs; it subscribes through the hub (the sensor runs while it
// is watched, shared with a link) and lets go when the browser leaves.
// TestLiveViewWaitsForRun: the status server serves as soon as it
// listens, and the console's Run starts beside it; a live view asked for
// in between waits for Run instead of being refused.
func TestLiveViewWaitsForRun(t *testing.T) {
	f := newFixture(t, fixtureOpts{lateRun: true})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type answer struct {
		ctype string
		err   error
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/sensors/cam/mjpeg", nil)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		got <- answer{ctype: resp.Header.Get("Content-Type")}
	}()
	// It holds a viewer slot, waiting for Run before it subscribes.
	agenttest.Eventually(t, "the request waiting", func() bool { return f.con.Stats().Viewers == 1 })
	if n := f.stat("cam").Subscribers; n != 0 {
		t.Fatalf("subscribed before Run: %d", n)
	}
	f.run()
	a := <-got
	if a.err != nil || !strings.HasPrefix(a.ctype, "multipart/x-mixed-replace") {
		t.Fatalf("answer %q, %v: want the stream once Run started", a.ctype, a.err)
	}
}

func TestMJPEGPreview(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	link, err := f.hub.Subscribe("cam", sensors.SubscribeOptions{Label: "a link"})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/sensors/cam/mjpeg", nil)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/x-mixed-replace" {
		t.Fatalf("content type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var frames [][]byte
	for len(frames) < 3 {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("part type %q", p.Header.Get("Content-Type"))
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil || img.Bounds().Dx() != 320 || img.Bounds().Dy() != 240 {
			t.Fatalf("frame %d: %v %v", len(frames), img.Bounds(), err)
		}
		frames = append(frames, b)
	}
	if bytes.Equal(frames[0], frames[2]) {
		t.Error("the preview does not change: the synthetic camera's bar moves")
	}
	if st := f.stat("cam"); st.Subscribers != 2 {
		t.Errorf("cam has %d subscribers while watched with a link, want 2", st.Subscribers)
	}
	var v console.SensorView
	getJSON(t, f, "/api/sensors/cam", &v)
	if v.Viewers != 1 {
		t.Errorf("viewers %d, want 1", v.Viewers)
	}
	cancel()
	resp.Body.Close()
	agenttest.Eventually(t, "the preview to let the camera go", func() bool { return f.stat("cam").Subscribers == 1 })
	link.Close()
	agenttest.Eventually(t, "the camera to stop without viewers or links", func() bool { return f.stat("cam").State == "idle" })

	if code, _ := f.call("GET", "/api/sensors/video/mjpeg", ""); code != http.StatusConflict {
		t.Errorf("an H.264 preview: %d, want 409", code)
	}
	if code, _ := f.call("GET", "/api/sensors/nope/mjpeg", ""); code != http.StatusNotFound {
		t.Errorf("an unknown sensor: %d", code)
	}
	if code, _ := f.call("GET", "/api/sensors/cam/mjpeg?fps=0", ""); code != http.StatusBadRequest {
		t.Errorf("fps=0: %d", code)
	}
	code, body := f.call("GET", "/api/sensors/cam/still.jpg", "")
	if _, err := jpeg.Decode(strings.NewReader(body)); code != 200 || err != nil {
		t.Errorf("still.jpg: %d %v", code, err)
	}
}

// events reads n server-sent events of path into v (a pointer to a slice).
func events[T any](t *testing.T, f *fixture, path string, n int) []T {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+path, nil)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("GET %s: %s %q", path, resp.Status, ct)
	}
	var out []T
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for len(out) < n && sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		out = append(out, v)
	}
	if len(out) < n {
		t.Fatalf("%d of %d events: %v", len(out), n, sc.Err())
	}
	return out
}

// TestMotionFeed: the plot's feed sends the rows with their capture times
// (10 ms apart at 100 Hz), the axes, and the measured rate.
func TestMotionFeed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	evs := events[console.PlotEvent](t, f, "/api/sensors/accel/live", 12)
	var ts []float64
	for _, e := range evs {
		if strings.Join(e.Axes, ",") != "accX,accY,accZ" || e.Units != "m/s2" || e.Every != 1 || e.Declared != 100 {
			t.Fatalf("event %+v", e)
		}
		if len(e.T) != len(e.V) {
			t.Fatalf("%d times, %d rows", len(e.T), len(e.V))
		}
		for _, v := range e.V {
			if len(v) != 3 {
				t.Fatalf("row %v", v)
			}
		}
		ts = append(ts, e.T...)
	}
	for i := 1; i < len(ts); i++ {
		if d := ts[i] - ts[i-1]; math.Abs(d-10) > 0.01 {
			t.Fatalf("rows %d and %d are %.3f ms apart, want 10 (every row, by its capture time)", i-1, i, d)
		}
	}
	if last := evs[len(evs)-1]; math.Abs(last.Rate-100) > 1 {
		t.Errorf("measured rate %.1f, want 100", last.Rate)
	}
}

// TestAudioFeed: the synthetic tone is a sine at half of full scale: RMS
// -9.0 dBFS, peak -6.0 dBFS; the envelope has a column per 10 ms.
func TestAudioFeed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	evs := events[console.LevelEvent](t, f, "/api/sensors/mic/live", 8)
	cols := 0
	for _, e := range evs {
		if math.Abs(e.RMS-(-9.0)) > 0.3 || math.Abs(e.Peak-(-6.0)) > 0.3 {
			t.Errorf("RMS %.1f peak %.1f dBFS, want -9.0 and -6.0", e.RMS, e.Peak)
		}
		for _, c := range e.Envelope {
			if c[0] < -0.51 || c[1] > 0.51 || c[1]-c[0] < 0.9 {
				t.Errorf("column %v: a 440 Hz sine spans -0.5…0.5 in 10 ms", c)
			}
		}
		cols += len(e.Envelope)
		if e.Rate != 16000 || e.Channels != 1 {
			t.Errorf("event %+v", e)
		}
	}
	if cols < 10*(len(evs)-1) {
		t.Errorf("%d columns in %d events of 100 ms", cols, len(evs))
	}
	if code, _ := f.call("GET", "/api/sensors/cam/live", ""); code != http.StatusConflict {
		t.Errorf("a feed of a camera: %d, want 409", code)
	}
}

// TestViewersAreBounded: MaxViewers streams at once; one more is refused,
// and a slot comes back when a stream ends.
func TestViewersAreBounded(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var open []*http.Response
	for range console.MaxViewers {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/sensors/accel/live", nil)
		resp, err := f.srv.Client().Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %d: %v %v", len(open), resp, err)
		}
		open = append(open, resp)
	}
	if code, body := f.call("GET", "/api/sensors/mic/live", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "too many live views") {
		t.Errorf("one stream too many: %d %s", code, body)
	}
	var st console.StatusView
	getJSON(t, f, "/api/status", &st)
	if st.Console.Viewers != console.MaxViewers {
		t.Errorf("viewers %d", st.Console.Viewers)
	}
	open[0].Body.Close()
	agenttest.Eventually(t, "a slot to come back", func() bool {
		getJSON(t, f, "/api/status", &st)
		return st.Console.Viewers == console.MaxViewers-1
	})
	for _, r := range open[1:] {
		r.Body.Close()
	}
}

// bigFrames is a still camera that sends 256 KiB frames as fast as it can:
// a browser that does not read falls behind it at once.
type bigFrames struct{}

func (bigFrames) Info() sensors.Info {
	return sensors.Info{Name: "fast", Kind: "test", Class: sensors.Still, Rate: 1000, Width: 16, Height: 16}
}

func (bigFrames) Run(ctx context.Context, out chan<- sensors.Sample) error {
	frame := bytes.Repeat([]byte{0xff}, 256<<10)
	for n := uint64(0); ; n++ {
		select {
		case out <- sensors.Sample{Class: sensors.Still, Time: time.Now(), Seq: n, Data: frame}:
		case <-ctx.Done():
			return nil
		}
	}
}

// TestSlowBrowserDropsAndCounts: a browser that stops reading does not
// grow the agent's memory: its subscription's two-frame queue drops the
// oldest frame (counted by the hub for the sensor, and by the console once
// the stream ends), and Run's end still ends the stream.
func TestSlowBrowserDropsAndCounts(t *testing.T) {
	f := newFixture(t, fixtureOpts{sources: []sensors.Source{bigFrames{}}})
	resp := f.req("GET", "/api/sensors/fast/mjpeg", "")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	// Nothing is read: the socket buffers fill, the handler's write
	// blocks, the queue overflows.
	agenttest.Eventually(t, "the hub to count the preview's drops", func() bool { return f.stat("fast").Dropped > 100 })
	f.stop() // Run's end cuts the blocked write and waits for the stream
	if f.stat("fast").Subscribers != 0 {
		t.Errorf("the stream still holds the sensor after Run returned")
	}
	if st := f.con.Stats(); st.Dropped == 0 || st.Viewers != 0 {
		t.Errorf("console stats after the stream ended: %+v, want its drops counted and no viewer", st)
	}
}

// scores is an on-device model's result stream: one score per label, ten
// classifications a second.
type scores struct{}

func (scores) Info() sensors.Info {
	return sensors.Info{Name: "model", Kind: "eim", Class: sensors.Inference, Axes: []string{"idle", "wave"}, Units: "score"}
}

func (scores) Run(ctx context.Context, out chan<- sensors.Sample) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n := uint64(0); ; n++ {
		v := float64(n%10) / 10
		select {
		case out <- sensors.Sample{Class: sensors.Inference, Time: time.Now(), Seq: n, Values: []float64{1 - v, v}, Data: []byte(`{}`)}:
		case <-ctx.Done():
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// TestModelScores: a model's result stream is plotted like motion axes,
// one per label, and captured as CSV with a column per label.
func TestModelScores(t *testing.T) {
	f := newFixture(t, fixtureOpts{sources: []sensors.Source{scores{}}})
	var v console.SensorView
	getJSON(t, f, "/api/sensors/model", &v)
	if v.Live != "plot" || v.Format != "scores" {
		t.Errorf("model view %+v", v)
	}
	evs := events[console.PlotEvent](t, f, "/api/sensors/model/live", 3)
	for _, e := range evs {
		if strings.Join(e.Axes, ",") != "idle,wave" || len(e.V) == 0 || len(e.V[0]) != 2 || e.V[0][0]+e.V[0][1] != 1 {
			t.Errorf("event %+v", e)
		}
	}
	c := finished(t, f, startCapture(t, f, "model", 0.5).ID)
	csv := strings.Split(strings.TrimSpace(string(download(t, f, c))), "\n")
	if c.State != console.CaptureDone || csv[0] != "timestamp,idle,wave" || len(csv) < 5 {
		t.Errorf("capture %+v:\n%s", c, strings.Join(csv, "\n"))
	}
}
