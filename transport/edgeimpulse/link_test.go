package edgeimpulse_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/conf/conftest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/internal/timesync"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var encodings = []string{"json", "cbor"}

// rig is a link under the real supervisor (agenttest.RunLink), over a hub
// of synthetic sensors, talking to the fake on 127.0.0.1. Everything it
// starts stops when the test ends.
type rig struct {
	t      testing.TB
	enc    string
	srv    *eitest.Server
	sup    *supervisor.Supervisor
	spool  *spool.Spool
	stats  *transport.Stats
	motion *synthetic.Motion
	audio  *synthetic.Audio
	// keyFile is the api_key_file with rigOpts.keyFile.
	keyFile string
}

type rigOpts struct {
	enc    string
	apiKey string // "" = the fake's key
	camFPS float64
	extra  []sensors.Source
	names  []string
	// realPing keeps the default 30 s / 10 s keep-alive (long benches).
	realPing bool
	// srv reuses a running fake (not closed by this rig); tls starts the
	// fake with TLS and caFile/insecure choose how the link trusts it.
	srv              *eitest.Server
	tls              bool
	caFile, insecure bool
	// spoolDir reuses a spool directory (an agent restart); spoolClock
	// paces the spool's retries (nil: the real clock).
	spoolDir   string
	spoolClock clock.Clock
	// keyFile gives the key as api_key_file (its path in rig.keyFile).
	keyFile bool
	// hub, when set, wraps the rig's hub: the link sees what it returns.
	hub func(sensors.Hub) sensors.Hub
	// time is the link's clock synchronization state (nil: the system's);
	// stateDir replaces the link's state directory.
	time     *timesync.Sync
	stateDir string
}

func testLogger(testing.TB) *slog.Logger {
	if os.Getenv("EI_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newRig(t testing.TB, o rigOpts) *rig {
	t.Helper()
	log := testLogger(t)
	srv := o.srv
	if srv == nil {
		var err error
		if srv, err = eitest.New(eitest.Options{Logger: log, TLS: o.tls}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() }) // after the link and the hub
	}
	mc := synthetic.Config{Signal: "motion", Frequencies: []float64{100, 50}, Seed: 7, Noise: 0.1}
	mc.SetDefaults()
	motion := synthetic.NewMotion("accel", mc)
	ac := synthetic.Config{Signal: "audio"}
	ac.SetDefaults()
	audio := synthetic.NewAudio("mic", ac)
	cc := synthetic.Config{Signal: "camera", FPS: cmp.Or(o.camFPS, 12)}
	cc.SetDefaults()
	h := agenttest.Hub(t, log, append([]sensors.Source{motion, audio, synthetic.NewCamera("cam", cc)}, o.extra...)...)
	var linkHub sensors.Hub = h
	if o.hub != nil {
		linkHub = o.hub(h)
	}
	deps := agenttest.Deps(t, "ei", linkHub, log)
	deps.Device = transport.Device{ID: "dc:a6:32:01:02:03", Name: "pi", Type: "RASPBERRY_PI"}
	deps.Time = o.time
	if o.stateDir != "" {
		deps.StateDir = o.stateDir
	}
	if o.spoolDir == "" {
		deps.Spool = agenttest.Spool(t, spool.Options{Logger: log, Clock: o.spoolClock})
	} else {
		var err error
		if deps.Spool, err = spool.Open(o.spoolDir, spool.Options{Logger: log, Clock: o.spoolClock}); err != nil {
			t.Fatal(err)
		}
	}
	key := cmp.Or(o.apiKey, srv.APIKey())
	cfg := edgeimpulse.Config{APIKey: key, RemoteMgmtURL: srv.WSURL(), IngestionURL: srv.IngestionURL(),
		Encoding: o.enc, Sensors: o.names, InsecureSkipVerify: o.insecure,
		PingInterval: conf.Duration(250 * time.Millisecond), PongTimeout: conf.Duration(1500 * time.Millisecond)}
	if cfg.Sensors == nil {
		cfg.Sensors = []string{"accel", "mic", "cam"}
	}
	keyFile := ""
	if o.keyFile {
		keyFile = filepath.Join(t.TempDir(), "ei-api-key")
		if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.APIKeyFile = keyFile // cfg.APIKey holds it too, as Validate resolves it
	}
	if o.caFile {
		cfg.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(cfg.CAFile, srv.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if o.realPing {
		cfg.PingInterval, cfg.PongTimeout = 0, 0 // SetDefaults in New
	}
	link, err := edgeimpulse.New(cfg, deps, edgeimpulse.Options{UploadRetry: retry.Policy{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	sup := agenttest.RunLink(t, "edgeimpulse", link, deps)
	return &rig{t: t, enc: o.enc, srv: srv, sup: sup, spool: deps.Spool, stats: deps.Stats, motion: motion, audio: audio, keyFile: keyFile}
}

// on returns the rig reporting to t (a subtest).
func (r *rig) on(t testing.TB) *rig {
	c := *r
	c.t = t
	return &c
}

// wait fails the test unless cond holds within agenttest.Patience, naming
// the link's state and what the device sent.
func (r *rig) wait(what string, cond func() bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), agenttest.Patience)
	defer cancel()
	if err := agenttest.Poll(ctx, what, cond); err != nil {
		st := r.sup.Status()
		r.t.Fatalf("%v (link %s, last error %q; device sent %v)", err, st.State, st.LastError, r.srv.MessageTypes(0))
	}
}

func (r *rig) waitUp() {
	r.t.Helper()
	r.wait("device connected", r.srv.Connected)
}

// waitState waits for the supervised link to reach state want.
func (r *rig) waitState(want supervisor.State) {
	r.t.Helper()
	r.wait(fmt.Sprintf("link %s", want), func() bool { return r.sup.Status().State == want })
}

// eachEncoding runs f in a subtest per encoding, on a fresh rig (o with
// that encoding) whose device is connected.
func eachEncoding(t *testing.T, o rigOpts, f func(t *testing.T, r *rig)) {
	for _, enc := range encodings {
		t.Run(enc, func(t *testing.T) {
			o.enc = enc
			r := newRig(t, o)
			r.waitUp()
			f(t, r)
		})
	}
}

// sampleCycle sends a request and waits until it ends (finished or failed),
// returning the message types the device sent in reply.
func (r *rig) sampleCycle(req eitest.SampleRequest) []string {
	r.t.Helper()
	from := len(r.srv.Messages())
	if err := r.srv.RequestSample(req); err != nil {
		r.t.Fatal(err)
	}
	var types []string
	r.wait("end of sample", func() bool {
		// One snapshot of the messages: more may arrive while we look.
		types = types[:0]
		for _, m := range r.srv.Messages()[from:] {
			types = append(types, m.Type)
			if m.Type == "sampleFinished" || (m.Type == "sample" && m.Fields["sample"] == false) {
				return true
			}
		}
		return false
	})
	return types
}

// cycle runs a sample cycle (sampleCycle) and fails the test, naming what,
// unless the device's replies are want.
func (r *rig) cycle(what string, req eitest.SampleRequest, want []string) {
	r.t.Helper()
	if got := r.sampleCycle(req); !slices.Equal(got, want) {
		r.t.Fatalf("%s: messages %v, want %v (error %q)", what, got, want, r.lastSampleError())
	}
}

// waitUpload waits until the fake has recorded an upload match accepts.
func (r *rig) waitUpload(what string, match func(eitest.Upload) bool) {
	r.t.Helper()
	r.wait(what, func() bool { return slices.ContainsFunc(r.srv.Uploads(), match) })
}

// stored accepts an upload ingestion stored.
func stored(u eitest.Upload) bool { return u.Status == 200 }

func (r *rig) lastSampleError() string {
	msgs := r.srv.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Type == "sample" && msgs[i].Fields["sample"] == false {
			s, _ := msgs[i].Fields["error"].(string)
			return s
		}
	}
	return ""
}

func TestHello(t *testing.T) {
	eachEncoding(t, rigOpts{}, func(t *testing.T, r *rig) {
		h := r.srv.Hellos()[0]
		if h.Encoding != r.enc || !h.Accepted {
			t.Fatalf("hello encoding %s accepted %v", h.Encoding, h.Accepted)
		}
		f := h.Fields
		checks := []struct {
			name string
			got  any
			want any
		}{
			{"version", num(f["version"]), 3.0},
			{"apiKey", f["apiKey"], r.srv.APIKey()},
			{"deviceId", f["deviceId"], "dc:a6:32:01:02:03"},
			{"deviceType", f["deviceType"], "RASPBERRY_PI"},
			{"connection", f["connection"], "ip"},
			{"supportsSnapshotStreaming", f["supportsSnapshotStreaming"], true},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
		}
		ss, _ := f["sensors"].([]any)
		want := []struct {
			name  string
			max   float64
			freqs []float64
		}{
			{"accel", 300, []float64{100, 50}},
			{"mic", 300, []float64{16000}},
			{"Camera (320x240)", 60000, []float64{}},
		}
		if len(ss) != len(want) {
			t.Fatalf("sensors = %v", ss)
		}
		for i, w := range want {
			m := ss[i].(map[string]any)
			if m["name"] != w.name || num(m["maxSampleLengthS"]) != w.max {
				t.Errorf("sensor %d = %v, want %+v", i, m, w)
			}
			fr, ok := m["frequencies"].([]any)
			if !ok || len(fr) != len(w.freqs) {
				t.Errorf("sensor %s frequencies = %v, want %v", w.name, m["frequencies"], w.freqs)
				continue
			}
			for j := range fr {
				if num(fr[j]) != w.freqs[j] {
					t.Errorf("sensor %s frequencies = %v, want %v", w.name, fr, w.freqs)
				}
			}
		}
	})
}

func num(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case uint64:
		return float64(n)
	case int64:
		return float64(n)
	}
	return math.NaN()
}

var fullCycle = []string{"sample", "sampleStarted", "sampleProcessing", "sampleUploading", "sampleFinished"}

func TestSampleSeries(t *testing.T) {
	cases := []struct {
		name     string
		req      eitest.SampleRequest
		rows     int
		width    int
		interval float64
	}{
		{"motion 2s 100Hz", eitest.SampleRequest{Sensor: "accel", Label: "idle", Length: 2000, Interval: 10}, 200, 3, 10},
		{"motion 2s 50Hz decimated", eitest.SampleRequest{Sensor: "accel", Label: "wave", Length: 2000, Interval: 20}, 100, 3, 20},
		{"audio 1s 16kHz", eitest.SampleRequest{Sensor: "mic", Label: "noise", Length: 1000, Interval: 0.0625}, 16000, 1, 0.0625},
	}
	eachEncoding(t, rigOpts{}, func(t *testing.T, r *rig) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := r.on(t)
				n := len(r.srv.Uploads())
				r.cycle("sample", c.req, fullCycle)
				ups := r.srv.Uploads()[n:]
				if len(ups) != 1 || ups[0].Status != 200 || ups[0].File == nil {
					t.Fatalf("uploads %+v", ups)
				}
				u := ups[0]
				if u.File.Rows != c.rows || u.File.Width != c.width || u.File.Encoding != r.enc || u.File.IntervalMs != c.interval {
					t.Errorf("file %+v, want %d rows × %d in %s", u.File, c.rows, c.width, r.enc)
				}
				if u.Label != c.req.Label || u.FileName != c.req.Label+"."+r.enc || u.Path != "/api/training/data" {
					t.Errorf("upload label %q file %q path %q", u.Label, u.FileName, u.Path)
				}
				// The source started for this sample: row 0 is reading 0.
				switch c.req.Sensor {
				case "accel":
					for i, v := range u.File.First {
						if v != r.motion.Value(0, i) {
							t.Errorf("first row[%d] = %v, want %v", i, v, r.motion.Value(0, i))
						}
					}
				case "mic":
					if u.File.First[0] != float64(r.audio.PCM(0)) {
						t.Errorf("first audio value %v, want %v", u.File.First[0], r.audio.PCM(0))
					}
				}
			})
		}
		// The spool removes an item just after the peer acknowledged it,
		// which is when sampleFinished goes out: allow that moment.
		r.wait("spool emptied", func() bool { return r.spool.Stats().Items == 0 })
		if st := r.spool.Stats(); st.Items != 0 || st.Delivered != uint64(len(cases)) {
			t.Errorf("spool %+v after delivery", st)
		}
	})
}

func TestSampleCamera(t *testing.T) {
	eachEncoding(t, rigOpts{}, func(t *testing.T, r *rig) {
		want := []string{"sample", "sampleStarted", "sampleUploading", "sampleFinished"}
		r.cycle("sample", eitest.SampleRequest{Sensor: "Camera (320x240)", Label: "cat", Path: "/api/testing/data"}, want)
		u := r.srv.Uploads()[0]
		if u.Path != "/api/testing/files" || u.ImageWidth != 320 || u.ImageHeight != 240 || u.FileName != "cat.jpg" || u.Label != "cat" {
			t.Errorf("upload %+v", u)
		}
	})
}

func TestSampleRefused(t *testing.T) {
	cases := []struct {
		name string
		req  eitest.SampleRequest
		want string
	}{
		{"unknown sensor", eitest.SampleRequest{Sensor: "Bogus", Label: "x", Length: 1000, Interval: 10}, "Invalid sensor: Bogus"},
		{"too long", eitest.SampleRequest{Sensor: "accel", Label: "x", Length: 301000, Interval: 10}, "longer than the maximum"},
		{"unsupported interval", eitest.SampleRequest{Sensor: "accel", Label: "x", Length: 1000, Interval: 3}, "unsupported interval"},
		{"zero length", eitest.SampleRequest{Sensor: "accel", Label: "x", Length: 0, Interval: 10}, "invalid sample length"},
		{"bad path", eitest.SampleRequest{Sensor: "accel", Label: "x", Length: 1000, Interval: 10, Path: "/api/../x"}, "invalid ingestion path"},
	}
	eachEncoding(t, rigOpts{}, func(t *testing.T, r *rig) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := r.on(t)
				got := r.sampleCycle(c.req)
				if len(got) != 1 || got[0] != "sample" {
					t.Fatalf("messages %v, want one refusal", got)
				}
				if e := r.lastSampleError(); !strings.Contains(e, c.want) {
					t.Errorf("error %q, want it to contain %q", e, c.want)
				}
			})
		}
		if n := len(r.srv.Uploads()); n != 0 {
			t.Errorf("%d uploads after refusals", n)
		}
	})
}

func TestSnapshotStreaming(t *testing.T) {
	eachEncoding(t, rigOpts{camFPS: 12}, func(t *testing.T, r *rig) {
		count := func(typ string) int {
			n := 0
			for _, m := range r.srv.Messages() {
				if m.Type == typ {
					n++
				}
			}
			return n
		}
		// Low is the default when resolution is absent.
		if err := r.srv.StartSnapshot(""); err != nil {
			t.Fatal(err)
		}
		r.wait("low frames", func() bool { return len(r.srv.Frames()) >= 8 })
		if err := r.srv.StopSnapshot(); err != nil {
			t.Fatal(err)
		}
		r.wait("snapshotStopped", func() bool { return count("snapshotStopped") == 1 })
		low := r.srv.Frames()
		for _, f := range low {
			if f.Height != 96 || f.Width != 128 || f.FileName != "frame.jpg" {
				t.Fatalf("low frame %+v, want 128x96 frame.jpg", f)
			}
		}
		// The rate is paced on capture time, which the fake does not see:
		// TestSnapshotLowRateFromJitteryCamera and TestLowPacer check it.
		fps := float64(len(low)-1) / low[len(low)-1].At.Sub(low[0].At).Seconds()
		t.Logf("low: %d frames at %.2f fps on arrival", len(low), fps)
		if count("snapshotStarted") != 1 {
			t.Errorf("snapshotStarted sent %d times", count("snapshotStarted"))
		}

		// High: full frames, while a motion sample is captured.
		if err := r.srv.StartSnapshot("high"); err != nil {
			t.Fatal(err)
		}
		r.wait("snapshotStarted", func() bool { return count("snapshotStarted") == 2 })
		r.cycle("sample during streaming", eitest.SampleRequest{Sensor: "accel", Label: "during", Length: 500, Interval: 10}, fullCycle)
		n := len(low)
		r.wait("high frames", func() bool { return len(r.srv.Frames()) >= n+6 })
		if err := r.srv.StopSnapshot(); err != nil {
			t.Fatal(err)
		}
		r.wait("snapshotStopped", func() bool { return count("snapshotStopped") == 2 })
		high := r.srv.Frames()[n:]
		for _, f := range high {
			if f.Height != 240 || f.Width != 320 {
				t.Fatalf("high frame %+v, want 320x240", f)
			}
		}
		// A stop while idle gets no reply.
		if err := r.srv.StopSnapshot(); err != nil {
			t.Fatal(err)
		}
		r.sampleCycle(eitest.SampleRequest{Sensor: "Bogus"}) // a round trip to flush
		if c := count("snapshotStopped"); c != 2 {
			t.Errorf("snapshotStopped %d times after an idle stop", c)
		}
	})
}

func TestUploadFailureKeptAndDelivered(t *testing.T) {
	eachEncoding(t, rigOpts{}, func(t *testing.T, r *rig) {
		r.srv.FailUploads(503)
		want := []string{"sample", "sampleStarted", "sampleProcessing", "sampleUploading", "sample"}
		r.cycle("sample", eitest.SampleRequest{Sensor: "accel", Label: "kept", Length: 1000, Interval: 10}, want)
		if e := r.lastSampleError(); !strings.Contains(e, "503") || !strings.Contains(e, "kept") {
			t.Errorf("error %q should name the 503 and say the sample is kept", e)
		}
		if r.spool.Stats().Items != 1 {
			t.Fatalf("spool %+v, want the sample kept", r.spool.Stats())
		}
		r.srv.FailUploads(0)
		r.waitUpload("delivery after recovery", stored)
		ups := r.srv.Uploads()
		last := ups[len(ups)-1]
		if last.File == nil || last.File.Rows != 100 || last.Hash != ups[0].Hash {
			t.Errorf("delivered %+v; first attempt hash %s", last, ups[0].Hash)
		}
		r.wait("spool empty", func() bool { return r.spool.Stats().Items == 0 })
		for _, m := range r.srv.Messages() {
			if m.Type == "sampleFinished" {
				t.Error("sampleFinished sent for a failed upload")
			}
		}
	})
}

func TestReconnect(t *testing.T) {
	cases := []struct {
		name  string
		fault func(r *rig)
		heal  func(r *rig)
	}{
		{"drop mid-sample", func(r *rig) {
			if err := r.srv.RequestSample(eitest.SampleRequest{Sensor: "accel", Label: "cut", Length: 3000, Interval: 10}); err != nil {
				r.t.Fatal(err)
			}
			r.wait("sampleStarted", func() bool {
				types := r.srv.MessageTypes(0) // one snapshot: the server trims its list as it grows
				return len(types) > 0 && types[len(types)-1] == "sampleStarted"
			})
			r.srv.Drop()
		}, func(*rig) {}},
		{"stalled server", func(r *rig) { r.srv.Stall(true) }, func(r *rig) { r.srv.Stall(false) }},
	}
	for _, enc := range encodings {
		for _, c := range cases {
			t.Run(enc+"/"+c.name, func(t *testing.T) {
				r := newRig(t, rigOpts{enc: enc})
				r.waitUp()
				c.fault(r)
				r.wait("second hello", func() bool { return len(r.srv.Hellos()) >= 2 })
				c.heal(r)
				r.wait("reconnected", r.srv.Connected)
				r.waitState(supervisor.Up)
				r.cycle("sample after reconnect", eitest.SampleRequest{Sensor: "accel", Label: "after", Length: 500, Interval: 10}, fullCycle)
			})
		}
	}
}

func TestBadAPIKeyFails(t *testing.T) {
	for _, enc := range encodings {
		t.Run(enc, func(t *testing.T) {
			r := newRig(t, rigOpts{enc: enc, apiKey: "ei_wrong_secret"})
			r.waitState(supervisor.Failed)
			st := r.sup.Status()
			if !strings.Contains(st.LastError, "Invalid API key") || strings.Contains(st.LastError, "ei_wrong_secret") {
				t.Errorf("last error %q", st.LastError)
			}
			if d := r.stats.Details()["hello_error"]; d != "Invalid API key" {
				t.Errorf("hello_error detail %q", d)
			}
			if n := len(r.srv.Hellos()); n != 1 {
				t.Errorf("%d hellos: a refused key must not be retried", n)
			}
		})
	}
}

// TestRotatedAPIKeyFile: the project owner rotates the API key. With
// api_key_file, the sample whose upload is refused stays spooled, hello:false
// is retried (not failed) and says what it waits for, and once the new key
// is in the file the link is back and the sample is delivered, no restart.
func TestRotatedAPIKeyFile(t *testing.T) {
	eachEncoding(t, rigOpts{keyFile: true}, func(t *testing.T, r *rig) {
		const rotated = "ei_rotated_key_0123"
		r.srv.SetAPIKey(rotated)
		r.sampleCycle(eitest.SampleRequest{Sensor: "accel", Label: "rotated", Length: 500, Interval: 10})
		if e := r.lastSampleError(); !strings.Contains(e, "api key refused") {
			t.Errorf("sample error %q, want the refused key named", e)
		}
		if r.spool.Stats().Items != 1 {
			t.Fatalf("spool %+v, want the sample kept", r.spool.Stats())
		}
		hellos := len(r.srv.Hellos())
		r.srv.Drop()
		r.wait("a refused hello", func() bool {
			h := r.srv.Hellos()
			return len(h) > hellos && !h[len(h)-1].Accepted
		})
		r.wait("the link to say what it waits for", func() bool {
			return strings.Contains(r.sup.Status().LastError, "waiting for a new key in "+r.keyFile)
		})
		if st := r.sup.Status(); st.State == supervisor.Failed || strings.Contains(st.LastError, rotated) {
			t.Fatalf("status %+v", st)
		}
		if err := os.WriteFile(r.keyFile, []byte(rotated+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r.wait("reconnected with the new key", r.srv.Connected)
		r.wait("the kept sample delivered", func() bool { return r.spool.Stats().Items == 0 })
		ups := r.srv.Uploads()
		if last := ups[len(ups)-1]; last.Status != 200 || last.File == nil || last.File.Rows != 50 {
			t.Errorf("last upload %+v", last)
		}
	})
}

// TestMalformedAndUnknownMessages: frames that are no message, or one the
// link does not know, are ignored; a sample request that is not an object
// is refused (TestWrongTypedRequestsAnswered has the other wrong types).
// The session carries on.
func TestMalformedAndUnknownMessages(t *testing.T) {
	cases := map[string][][]byte{
		"json": {[]byte("{not json"), []byte(`{"sample":"nope"}`), []byte(`[1,2]`), []byte(`{"whatIsThis":1}`), []byte(`{"err":"Failed to parse message"}`)},
		"cbor": {{0xff, 0x00}, {0xa1, 0x66, 's', 'a', 'm', 'p', 'l', 'e', 0x01}, {0x82, 0x01, 0x02}, {0xa1, 0x63, 'f', 'o', 'o', 0x01}},
	}
	eachEncoding(t, rigOpts{}, func(t *testing.T, r *rig) {
		for _, b := range cases[r.enc] {
			if err := r.srv.SendRaw(b); err != nil {
				t.Fatal(err)
			}
		}
		r.wait("the sample that is not an object refused", func() bool { return strings.Contains(r.lastSampleError(), "not an object") })
		if got := r.srv.MessageTypes(0); len(got) != 1 {
			t.Errorf("replies %v, want the one refusal", got)
		}
		r.cycle("after garbage", eitest.SampleRequest{Sensor: "accel", Label: "still-ok", Length: 300, Interval: 10}, fullCycle)
		if n := len(r.srv.Hellos()); n != 1 {
			t.Errorf("session restarted (%d hellos) after malformed input", n)
		}
	})
}

func TestNewRejects(t *testing.T) {
	vc := synthetic.Config{Signal: "h264"}
	vc.SetDefaults()
	v, err := synthetic.NewH264("video", vc)
	if err != nil {
		t.Fatal(err)
	}
	cc := synthetic.Config{Signal: "camera"}
	cc.SetDefaults()
	deps := agenttest.Deps(t, "ei", agenttest.Hub(t, nil, v, synthetic.NewCamera("cam", cc), synthetic.NewCamera("cam2", cc)), nil)
	deps.Spool = agenttest.Spool(t, spool.Options{})
	cases := []struct {
		name    string
		sensors []string
		want    error
		text    string
	}{
		{"unknown sensor", []string{"nope"}, sensors.ErrUnknownSensor, ""},
		{"video", []string{"video"}, nil, "H.264"},
		{"two cameras same size", []string{"cam", "cam2"}, nil, "Camera (320x240)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := edgeimpulse.New(edgeimpulse.Config{APIKey: "k", Sensors: c.sensors}, deps, edgeimpulse.Options{})
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("New: %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	keyFile := dir + "/key"
	if err := os.WriteFile(keyFile, []byte("ei_file_key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		cfg      edgeimpulse.Config
		problems []string
	}{
		{"ok", edgeimpulse.Config{APIKeyFile: keyFile, Sensors: []string{"accel"}}, nil},
		{"missing", edgeimpulse.Config{Encoding: "xml"}, []string{"api_key_file", "encoding", "sensors"}},
		{"dup sensor", edgeimpulse.Config{APIKeyFile: keyFile, Sensors: []string{"a", "a"}}, []string{"sensors[1]"}},
		{"bad url", edgeimpulse.Config{APIKeyFile: keyFile, Sensors: []string{"a"}, RemoteMgmtURL: "http://x"}, []string{"remote_mgmt_url"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.SetDefaults()
			got, problems := conftest.Validate(&c.cfg)
			if strings.Join(got, ",") != strings.Join(c.problems, ",") {
				t.Errorf("problems %v, want %v", problems, c.problems)
			}
			if c.problems == nil && c.cfg.APIKey != "ei_file_key" {
				t.Errorf("api key not resolved from file")
			}
		})
	}
}

func TestTLS(t *testing.T) {
	cases := []struct {
		name     string
		o        rigOpts
		wantUp   bool
		errMatch string
	}{
		{"ca_file", rigOpts{enc: "json", tls: true, caFile: true}, true, ""},
		{"insecure_skip_verify", rigOpts{enc: "cbor", tls: true, insecure: true}, true, ""},
		{"unknown CA refused", rigOpts{enc: "json", tls: true}, false, "certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.o)
			if !c.wantUp {
				r.waitState(supervisor.Backoff)
				if e := r.sup.Status().LastError; !strings.Contains(e, c.errMatch) {
					t.Errorf("last error %q, want %q", e, c.errMatch)
				}
				if n := len(r.srv.Hellos()); n != 0 {
					t.Errorf("%d hellos reached an unverified server", n)
				}
				return
			}
			r.waitUp()
			r.cycle("over TLS", eitest.SampleRequest{Sensor: "accel", Label: "tls", Length: 300, Interval: 10}, fullCycle)
		})
	}
}

// TestSpooledSampleSurvivesRestart: a sample whose upload failed is
// delivered by the next agent run from the same spool directory.
func TestSpooledSampleSurvivesRestart(t *testing.T) {
	srv, err := eitest.New(eitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	// Each run is a subtest: its link, hub and supervisor stop when it ends.
	ok := t.Run("first run", func(t *testing.T) {
		r := newRig(t, rigOpts{enc: "cbor", srv: srv, spoolDir: dir})
		r.waitUp()
		srv.FailUploads(500)
		r.sampleCycle(eitest.SampleRequest{Sensor: "accel", Label: "survivor", Length: 500, Interval: 10})
		if e := r.lastSampleError(); !strings.Contains(e, "kept") {
			t.Fatalf("error %q", e)
		}
	}) // the agent stops with the sample still spooled
	if !ok {
		return
	}
	srv.FailUploads(0)
	t.Run("next run", func(t *testing.T) {
		r := newRig(t, rigOpts{enc: "cbor", srv: srv, spoolDir: dir})
		r.waitUpload("delivery by the next run", func(u eitest.Upload) bool {
			return u.Status == 200 && u.Label == "survivor" && u.File != nil && u.File.Rows == 50
		})
		r.wait("spool empty", func() bool { return r.spool.Stats().Items == 0 })
	})
}

// TestSampleWhileSampling: a second request during a capture is refused and
// the first completes; the next request right after sampleFinished works.
func TestSampleWhileSampling(t *testing.T) {
	r := newRig(t, rigOpts{enc: "json"})
	r.waitUp()
	if err := r.srv.RequestSample(eitest.SampleRequest{Sensor: "accel", Label: "first", Length: 1000, Interval: 10}); err != nil {
		t.Fatal(err)
	}
	r.wait("sampleStarted", func() bool {
		ts := r.srv.MessageTypes(0)
		return len(ts) > 0 && ts[len(ts)-1] == "sampleStarted"
	})
	if err := r.srv.RequestSample(eitest.SampleRequest{Sensor: "mic", Label: "second", Length: 1000, Interval: 0.0625}); err != nil {
		t.Fatal(err)
	}
	r.wait("first finished", func() bool {
		ts := r.srv.MessageTypes(0)
		return len(ts) > 0 && ts[len(ts)-1] == "sampleFinished"
	})
	if e := r.lastSampleError(); !strings.Contains(e, "already sampling") {
		t.Errorf("second request: error %q", e)
	}
	r.cycle("next sample", eitest.SampleRequest{Sensor: "accel", Label: "third", Length: 200, Interval: 10}, fullCycle)
}
