package console_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/console"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(rssChild())
	}
	goleak.VerifyTestMain(m)
}

// fixture is a console over a hub of synthetic sensors (accel: motion at
// 100 Hz, mic: a 440 Hz tone, cam: stills at 10 fps, video: H.264) and a
// links table the test sets, served by an httptest server through the
// status server's Mount, as the agent does.
type fixture struct {
	t      *testing.T
	hub    *hub.Hub
	con    *console.Console
	srv    *httptest.Server
	cfg    *config.Config
	tokenF string
	cancel context.CancelFunc
	done   chan struct{}
	run    func() // starts the console's Run (newFixture does, unless lateRun)
	ran    bool   // run was called

	mu     sync.Mutex
	links  []status.LinkStatus
	reload *status.ReloadStatus
}

type fixtureOpts struct {
	listen       net.Addr // nil: loopback
	openReadonly bool
	sources      []sensors.Source // nil: the synthetic four
	tokenFile    string           // "": a new one in the test's directory
	lateRun      bool             // the fixture serves before Run starts; the test calls f.run
}

func synth(t testing.TB, name string, tweak func(*synthetic.Config)) sensors.Source {
	t.Helper()
	c := synthetic.Config{}
	tweak(&c)
	c.SetDefaults()
	src, err := synthetic.New(name, c, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func synthetics(t testing.TB) []sensors.Source {
	return []sensors.Source{
		synth(t, "accel", func(c *synthetic.Config) { c.Signal = synthetic.SignalMotion; c.Frequencies = []float64{100} }),
		synth(t, "mic", func(c *synthetic.Config) { c.Signal = synthetic.SignalAudio }),
		synth(t, "cam", func(c *synthetic.Config) { c.Signal = synthetic.SignalCamera; c.FPS = 10 }),
		synth(t, "video", func(c *synthetic.Config) { c.Signal = synthetic.SignalH264 }),
	}
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	dir := t.TempDir()
	if o.sources == nil {
		o.sources = synthetics(t)
	}
	if o.listen == nil {
		o.listen = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8780}
	}
	f := &fixture{t: t, done: make(chan struct{}), tokenF: o.tokenFile}
	if f.tokenF == "" {
		f.tokenF = filepath.Join(dir, "token")
	}
	f.hub = agenttest.Hub(t, nil, o.sources...)
	cfg, err := config.Parse("test.yaml", []byte("device: {id: d1, name: bench, type: TEST}\nstate_dir: "+dir+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	f.links = []status.LinkStatus{{Name: "studio", Kind: "edgeimpulse", State: "up", Since: time.Now()}}
	con, err := console.New(console.Options{Hub: f.hub, Snapshot: f.snapshot, Config: func() *config.Config { return f.cfg },
		Secrets: redact.New(), Listen: o.listen, TokenFile: f.tokenF, OpenReadonly: o.openReadonly,
		CaptureDir: filepath.Join(dir, "captures"), Version: "test", PollPeriod: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.con = con
	srv := status.New(f.snapshot, nil)
	srv.Mount(con.Handler(), console.Prefixes...)
	f.srv = httptest.NewServer(srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.run = func() {
		f.ran = true
		go func() {
			defer close(f.done)
			_ = con.Run(ctx)
		}()
	}
	if !o.lateRun {
		f.run()
	}
	t.Cleanup(f.stop)
	return f
}

// stop ends Run (and with it every stream) and the server.
func (f *fixture) stop() {
	f.cancel()
	if f.ran {
		<-f.done
	}
	f.srv.Close()
}

func (f *fixture) config() *config.Config { return f.cfg }

func (f *fixture) setLinks(l ...status.LinkStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = l
}

func (f *fixture) setReload(st *status.ReloadStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload = st
}

func (f *fixture) snapshot() status.Snapshot {
	f.mu.Lock()
	links := append([]status.LinkStatus(nil), f.links...)
	reload := f.reload
	f.mu.Unlock()
	s := status.Snapshot{Device: status.Device{ID: "d1", Name: "bench", Type: "TEST"}, Version: "test", Links: links, Reload: reload}
	for _, h := range f.hub.Stats() {
		s.Sensors = append(s.Sensors, status.SensorStatus{Name: h.Name, Kind: h.Kind, Class: h.Class, State: h.State,
			Subscribers: h.Subscribers, Samples: h.Samples, Dropped: h.Dropped})
	}
	return s
}

func (f *fixture) token() string {
	b, err := os.ReadFile(f.tokenF)
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (f *fixture) stat(name string) hub.Stat {
	for _, s := range f.hub.Stats() {
		if s.Name == name {
			return s
		}
	}
	f.t.Fatalf("no sensor %q", name)
	return hub.Stat{}
}

// req is one request: method, path, body and headers (key, value pairs).
func (f *fixture) req(method, path, body string, hdr ...string) *http.Response {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(r)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp
}

// call is req with the whole body read.
func (f *fixture) call(method, path, body string, hdr ...string) (int, string) {
	f.t.Helper()
	resp := f.req(method, path, body, hdr...)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// csrf is the header and cookie pair of a browser that loaded the page.
var csrf = []string{"Cookie", "edge_agent_csrf=00112233445566778899aabbccddeeff", "X-CSRF-Token", "00112233445566778899aabbccddeeff"}
