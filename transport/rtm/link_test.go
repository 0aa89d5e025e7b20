package rtm_test

import (
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/h264"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

func TestMain(m *testing.M) {
	if fakeChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// fastOpts keep every timer short so faults resolve in well under a second.
var fastOpts = rtm.Options{
	FirstPingTimeout:  2 * time.Second,
	SetupTimeout:      10 * time.Second,
	StopWait:          time.Second,
	DisconnectedGrace: 500 * time.Millisecond,
	TwoTimerWait:      20 * time.Millisecond,
	SDPErrorWait:      20 * time.Millisecond,
}

// sink is the PUT target for recordings.
type sink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	puts map[string][]byte // by query "track" ("" for video)
	n    int
	fail bool
}

func newSink(t testing.TB) *sink {
	s := &sink{puts: map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			http.Error(w, "PUT only", http.StatusMethodNotAllowed)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.n++
		if s.fail {
			http.Error(w, "nope", http.StatusForbidden)
			return
		}
		s.puts[r.URL.Query().Get("track")] = b
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) get(track string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts[track]
}

type env struct {
	fake  *rtmtest.Server
	sink  *sink
	stats *transport.Stats
	cfg   rtm.Config
	deps  transport.Deps
}

func newEnv(t testing.TB, pingEvery time.Duration) *env {
	t.Helper()
	return newEnvWith(t, rtmtest.Options{PingInterval: pingEvery})
}

// newEnvWith is newEnv with the fake's options (Dir and Logger are set here):
// a hub with the synthetic camera "video" and microphone "mic", the fake,
// a recording sink and the link's deps.
func newEnvWith(t testing.TB, fo rtmtest.Options) *env {
	t.Helper()
	vcfg := synthetic.Config{Signal: synthetic.SignalH264}
	vcfg.SetDefaults()
	vsrc, err := synthetic.NewH264("video", vcfg)
	if err != nil {
		t.Fatal(err)
	}
	return newEnvVideo(t, fo, vsrc)
}

// newEnvVideo is newEnvWith with vsrc as the camera "video".
func newEnvVideo(t testing.TB, fo rtmtest.Options, vsrc sensors.Source) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	acfg := synthetic.Config{Signal: synthetic.SignalAudio}
	acfg.SetDefaults()
	h := agenttest.Hub(t, log, vsrc, synthetic.NewAudio("mic", acfg))
	fo.Dir, fo.Logger = t.TempDir(), log.With("side", "fake")
	fake, err := rtmtest.New("127.0.0.1:0", fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	sk := newSink(t)
	cfg := rtm.Config{URL: fake.WSURL(), Token: fake.Token(), ClientID: "dev-1", Video: "video", Audio: "mic",
		Record: rtm.Record{UploadURL: sk.srv.URL + "/rec.h264"}}
	cfg.SetDefaults()
	deps := agenttest.Deps(t, "recorder", h, log.With("side", "agent"))
	return &env{fake: fake, sink: sk, stats: deps.Stats, cfg: cfg, deps: deps}
}

// runLink runs the link under the real supervisor until the test ends.
func runLink(t *testing.T, e *env, cfg rtm.Config) *supervisor.Supervisor {
	t.Helper()
	link, err := rtm.New(cfg, e.deps, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	return agenttest.RunLink(t, "rtm", link, e.deps)
}

// manualLink is the link over e with record.start manual: it records only
// when asked, so a test's recording_state messages are the only ones.
func manualLink(t testing.TB, e *env) *rtm.Link {
	t.Helper()
	cfg := e.cfg
	cfg.Record.Start = "manual"
	link, err := rtm.New(cfg, e.deps, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// serveSession dials one session of link and serves it until the test
// ends (then closes it and waits for Serve); the channel gets what Serve
// returned.
func serveSession(t *testing.T, link *rtm.Link) <-chan error {
	t.Helper()
	sess, err := link.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { served <- sess.Serve(t.Context()) })
	t.Cleanup(func() {
		sess.Close()
		wg.Wait()
	})
	return served
}

// waitActive waits for a session beyond the first `before` ACTIVE ones with
// the supervisor up.
func waitActive(t *testing.T, e *env, sup *supervisor.Supervisor, before int) {
	t.Helper()
	agenttest.Eventually(t, "a new ACTIVE session", func() bool {
		return activeSessions(e.fake) > before && sup.Status().State == supervisor.Up
	})
}

func activeSessions(f *rtmtest.Server) int {
	n := 0
	for _, s := range f.Sessions() {
		if slices.Contains(s.States, rtm.StateActive) {
			n++
		}
	}
	return n
}

func TestRecordingEndToEnd(t *testing.T) {
	e := newEnv(t, 200*time.Millisecond)
	link, err := rtm.New(e.cfg, e.deps, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	sess, err := link.Dial(ctx)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- sess.Serve(ctx) }()

	agenttest.Eventually(t, "recording STARTED", func() bool { return e.stats.Details()["recording"] == rtm.RecordingStarted })
	started := time.Now()
	agenttest.Eventually(t, "video and audio at the fake", func() bool {
		s := e.fake.Sessions()
		return len(s) == 1 && s[0].VideoFrames >= 45 && s[0].AudioPackets >= 50 && s[0].Pongs >= 2
	})
	if err := link.StopRecording(); err != nil {
		t.Fatal(err)
	}
	recFor := time.Since(started)
	agenttest.Eventually(t, "recording STOPPED", func() bool { return e.stats.Details()["recording"] == rtm.RecordingStopped })

	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-serveErr; err == nil {
		t.Log("serve ended cleanly")
	}

	// The session ended the documented way.
	s := e.fake.Sessions()[0]
	if got := s.States; !slices.Equal(got, []string{rtm.StateSetup, rtm.StateActive, rtm.StateShutdown, rtm.StateTerminated}) {
		t.Errorf("session states = %v", got)
	}
	if s.Cause != rtm.CauseTermByClient {
		t.Errorf("cause = %q, want TERM_BY_CLIENT", s.Cause)
	}
	if len(s.MediaErrors) != 0 {
		t.Errorf("the fake found what a browser would refuse: %q", s.MediaErrors)
	}
	if len(s.Recordings) != 1 || !slices.Equal(s.Recordings[0].States, []string{rtm.RecordingStarted, rtm.RecordingStopped}) {
		t.Fatalf("recordings = %+v", s.Recordings)
	}
	for _, want := range []string{rtm.TypeSessionStart, rtm.TypeCandidate, rtm.TypePong, rtm.TypeRecordingStart, rtm.TypeRecordingStop, rtm.TypeSessionStop} {
		if !slices.Contains(s.Received, want) {
			t.Errorf("fake never received %s (got %v)", want, s.Received)
		}
	}

	// The video upload decodes: SPS/PPS/IDR at the first access unit, and
	// about as many frames as were recorded (15 fps; the start waits for a
	// keyframe, at most one 1 s GOP).
	video := e.sink.get("")
	units, err := h264.SplitAll(video)
	if err != nil {
		t.Fatalf("uploaded video does not parse: %v", err)
	}
	if len(units) == 0 || !units[0].Keyframe {
		t.Fatalf("first uploaded access unit is not a keyframe (%d units)", len(units))
	}
	types := nalTypes(units[0].Data)
	if !slices.Contains(types, 7) || !slices.Contains(types, 8) || !slices.Contains(types, 5) {
		t.Errorf("first access unit NAL types %v, want SPS(7), PPS(8), IDR(5)", types)
	}
	want := recFor.Seconds() * 15
	if n := float64(len(units)); n < want/2-15 || n > want+15 {
		t.Errorf("uploaded %d frames for %.1fs of recording (~%.0f expected)", len(units), recFor.Seconds(), want)
	}

	// The audio upload is the 440 Hz tone at 8 kHz µ-law.
	audio := e.sink.get("audio")
	if len(audio) < 8000 {
		t.Fatalf("audio upload %d bytes, want >= 1 s", len(audio))
	}
	if f := toneFrequency(audio, 8000); math.Abs(f-440) > 10 {
		t.Errorf("audio tone %.1f Hz, want 440", f)
	}
}

func nalTypes(au []byte) []int {
	var out []int
	for _, n := range h264.SplitNALs(au) {
		out = append(out, h264.NALType(n))
	}
	return out
}

// toneFrequency estimates the frequency of a µ-law sine by zero crossings.
func toneFrequency(ulaw []byte, rate float64) float64 {
	crossings := 0
	prev := rtm.MuLawToLinear(ulaw[0])
	for _, b := range ulaw[1:] {
		v := rtm.MuLawToLinear(b)
		if (prev < 0) != (v < 0) {
			crossings++
		}
		prev = v
	}
	return float64(crossings) / 2 / (float64(len(ulaw)) / rate)
}
