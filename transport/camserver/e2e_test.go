package camserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const device = "pi-test-01"

// rig is one fake server plus one agent link run by a real supervisor over a
// real hub with synthetic sensors.
type rig struct {
	t        *testing.T
	srv      *camservertest.Server
	link     *camserver.Link
	stats    *transport.Stats
	spool    *spool.Spool
	cam      *synthetic.Camera
	sup      *supervisor.Supervisor
	frames   *frameLog
	cancel   context.CancelFunc
	done     chan struct{}
	hub      *hub.Hub
	state    string
	stopOnce sync.Once
	seen     struct {
		mu sync.Mutex
		m  map[string]bool
	}
}

type frameLog struct {
	mu     sync.Mutex
	frames [][]byte
}

func (f *frameLog) add(_ string, p []byte) {
	f.mu.Lock()
	f.frames = append(f.frames, append([]byte(nil), p...))
	f.mu.Unlock()
}

func (f *frameLog) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.frames)
}

func (f *frameLog) all() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.frames...)
}

type rigOpts struct {
	tls      bool
	cfg      func(*camserver.Config)
	opts     camserver.Options
	srvOpts  camservertest.Options
	prespool func(*spool.Spool)
	stateDir string
	srv      *camservertest.Server // reuse a server (a restarted agent)
	log      io.Writer             // the link's log at info (default: warnings to stderr)
}

func newServer(t *testing.T, o camservertest.Options) *camservertest.Server {
	t.Helper()
	srv, err := camservertest.New("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	// Tests run many requests per second: widen the per-minute limit.
	srv.SetLimit(4, 60000, true)
	return srv
}

func startRig(t *testing.T, o rigOpts) *rig {
	t.Helper()
	o.srvOpts.TLS = o.tls
	srv := o.srv
	if srv == nil {
		srv = newServer(t, o.srvOpts)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if o.log != nil {
		logger = slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	h := hub.New(hub.Options{Logger: logger})
	camCfg := synthetic.Config{Signal: synthetic.SignalCamera, FPS: 20}
	camCfg.SetDefaults()
	cam := synthetic.NewCamera("cam", camCfg)
	accCfg := synthetic.Config{Signal: synthetic.SignalMotion}
	accCfg.SetDefaults()
	if err := h.Add(cam); err != nil {
		t.Fatal(err)
	}
	if err := h.Add(synthetic.NewMotion("accel", accCfg)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o.prespool != nil {
		o.prespool(sp)
	}
	state := o.stateDir
	if state == "" {
		state = filepath.Join(dir, "state")
		os.MkdirAll(state, 0o700)
	}
	cfg := camserver.Config{URL: srv.URL(), User: camservertest.DemoUser, Password: camservertest.DemoPassword,
		Device: device, Poll: conf.Duration(150 * time.Millisecond), Heartbeat: conf.Duration(40 * time.Millisecond),
		Stream: camserver.Stream{Sensor: "cam"}}
	if o.tls {
		ca := filepath.Join(dir, "ca.pem")
		os.WriteFile(ca, srv.CAPEM(), 0o644)
		cfg.CAFile = ca
	}
	cfg.SetDefaults()
	// Faster than the 400 ms floor Validate enforces, so a stalled window
	// fills within a fraction of a second.
	cfg.Stream.Delta = conf.Duration(100 * time.Millisecond)
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	stats := &transport.Stats{}
	if o.opts.StreamRetry.Min == 0 {
		o.opts.StreamRetry = retry.Policy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	if o.opts.Deliver.Min == 0 {
		o.opts.Deliver = retry.Policy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	if o.opts.Watchdog == 0 {
		o.opts.Watchdog = 300 * time.Millisecond
	}
	link, err := camserver.New(cfg, transport.Deps{Name: "cs", Logger: logger, Hub: h,
		Device: transport.Device{Name: device}, StateDir: state, Spool: sp, Stats: stats,
		Clock: clock.Real{}, Version: "test"}, o.opts)
	if err != nil {
		t.Fatal(err)
	}
	fl := &frameLog{}
	srv.SetFrameHook(fl.add)
	sup := supervisor.New(supervisor.Options{Name: "cs", Kind: "camserver", Link: link, Logger: logger,
		Policy: retry.Policy{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, srv: srv, link: link, stats: stats, spool: sp, cam: cam, sup: sup, frames: fl,
		cancel: cancel, done: make(chan struct{}), hub: h, state: state}
	r.seen.m = map[string]bool{}
	watch, err := h.Subscribe("cam", sensors.SubscribeOptions{Queue: 64, Policy: sensors.NoDrop})
	if err != nil {
		t.Fatal(err)
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for s := range watch.C() {
			r.seen.mu.Lock()
			r.seen.m[string(s.Data)] = true
			r.seen.mu.Unlock()
		}
	}()
	go func() {
		defer close(r.done)
		sup.Run(ctx)
		watch.Close()
		<-watchDone
	}()
	t.Cleanup(r.stop)
	return r
}

// stop ends the agent side (idempotent); the server stays up.
func (r *rig) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		<-r.done
		r.hub.Close()
	})
}

// waitFor polls cond until it holds (a deadline only to fail instead of hang).
func waitFor(t *testing.T, what string, cond func() bool) {
	defer func(s time.Time) { t.Logf("%s after %v", what, time.Since(s)) }(time.Now())
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// operator is a second device on the same account, driving the agent with
// messages the way a viewer application would.
func operator(t *testing.T, srv *camservertest.Server, name string) *camserver.Client {
	t.Helper()
	u, _ := url.Parse(srv.URL())
	rt := &http2.Transport{AllowHTTP: true}
	if u.Scheme == "https" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(srv.CAPEM())
		rt.TLSClientConfig = &tls.Config{RootCAs: pool}
	} else {
		rt.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	t.Cleanup(rt.CloseIdleConnections)
	c := camserver.NewClient(u, rt, camserver.ClientOptions{User: camservertest.DemoUser,
		Password: camservertest.DemoPassword, Device: name})
	if err := c.Authorize(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// isFrame reports whether p is byte for byte one of the JPEGs the camera
// produced (collected by a second hub subscriber).
func (r *rig) isFrame(p []byte) bool {
	r.seen.mu.Lock()
	defer r.seen.mu.Unlock()
	return r.seen.m[string(p)]
}

func TestEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"h2c", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRig(t, rigOpts{tls: tc.tls})
			ctx := context.Background()
			waitFor(t, "authorize", func() bool { return r.srv.Stats().Authorizations >= 1 })
			waitFor(t, "heartbeats", func() bool { return r.srv.Calls("/heartBit.json") >= 2 })
			waitFor(t, "stream frames", func() bool { return r.frames.n() >= 3 })
			for i, f := range r.frames.all() {
				if !r.isFrame(f) {
					t.Fatalf("stream frame %d (%d bytes) is not a camera JPEG", i, len(f))
				}
			}
			if r.stats.Details()["stream"] != "on" {
				t.Errorf("stream detail = %q, want on", r.stats.Details()["stream"])
			}

			op := operator(t, r.srv, "viewer-app")
			// Config round trip (account-wide; the operator does it, not the agent).
			if err := op.SetConfig(ctx, map[int]float64{2: 12}); err != nil {
				t.Fatal(err)
			}
			cfg, err := op.GetConfig(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var dead float64
			for _, e := range cfg {
				if e.Kind == 2 {
					dead = e.Clamped()
				}
			}
			if dead != 12 {
				t.Fatalf("kind 2 after setConfig = %v, want 12 (%+v)", dead, cfg)
			}
			streams, err := op.GetStreams(ctx)
			if err != nil || len(streams) != 1 || streams[0].Device != device || streams[0].Subproto != "RAW_JPEG" {
				t.Fatalf("getStreams = %+v, %v", streams, err)
			}
			online, err := op.GetDevicesOnline(ctx)
			if err != nil || len(online) != 2 {
				t.Fatalf("getDevicesOnline = %+v, %v", online, err)
			}

			// Messages to the agent: 70 plain ones (three pages) and a status
			// request; the agent must handle each once.
			var msgs []camserver.Message
			for i := range 70 {
				msgs = append(msgs, camserver.Message{Msg: "note", Target: device, Params: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
			}
			if err := op.AddMsgs(ctx, msgs...); err != nil {
				t.Fatal(err)
			}
			if err := op.AddMsgs(ctx, camserver.Message{Msg: camserver.CmdStatus, Target: device, Params: json.RawMessage(`{"id":"q1"}`)}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "71 messages handled", func() bool { return r.stats.MsgsIn.Load() >= 71 })
			var reply *camserver.Status
			stamp := camserver.SyncToken
			waitFor(t, "status reply", func() bool {
				got, err := op.GetMsgs(ctx, stamp, false)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range got {
					stamp = m.Stamp
					if m.Msg == camserver.CmdStatus && m.Device == device {
						reply = &camserver.Status{}
						if err := json.Unmarshal(m.Params, reply); err != nil {
							t.Fatal(err)
						}
					}
				}
				return reply != nil
			})
			if reply.ID != "q1" || reply.Device != device || len(reply.Sensors) != 2 || !reply.Stream {
				t.Fatalf("status reply = %+v", reply)
			}

			// Snapshot command → a record whose data is a camera JPEG.
			if err := op.AddMsgs(ctx, camserver.Message{Msg: camserver.CmdSnapshot, Target: device}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "record", func() bool { return len(r.srv.Records()) == 1 })
			recs, err := op.GetRecordCount(ctx, "")
			if err != nil || len(recs) != 1 || recs[0].Device != device {
				t.Fatalf("getRecordCount = %+v, %v", recs, err)
			}
			meta, err := op.GetRecordMeta(ctx, recs[0].RID)
			if err != nil || meta.Meta != "JPEG" {
				t.Fatalf("getRecordMeta = %+v, %v", meta, err)
			}
			data, err := op.GetRecordData(ctx, recs[0].RID)
			if err != nil || !r.isFrame(data) {
				t.Fatalf("getRecordData: %d bytes, %v; want a camera JPEG", len(data), err)
			}
			if err := op.DeleteRecords(ctx, recs[0].RID); err != nil {
				t.Fatal(err)
			}
			if _, err := op.GetRecordData(ctx, recs[0].RID); !errorsIs(err, camserver.ErrNoSuchRecord) {
				t.Fatalf("deleted record: %v, want NO_SUCH_RECORD", err)
			}

			// stream_stop / stream_start.
			if err := op.AddMsgs(ctx, camserver.Message{Msg: camserver.CmdStreamStop, Target: device}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "stream off", func() bool { return r.stats.Details()["stream"] == "off" })
			opened := r.srv.Stats().StreamsOpened
			if err := op.AddMsgs(ctx, camserver.Message{Msg: camserver.CmdStreamStart, Target: device}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "stream reopened", func() bool { return r.srv.Stats().StreamsOpened > opened && r.stats.Details()["stream"] == "on" })

			// No duplicates: after a while, the count has not moved.
			handled := r.stats.MsgsIn.Load()
			if handled != 74 {
				t.Fatalf("messages handled = %d, want 74 (71 + snapshot + stop + start)", handled)
			}
			if r.srv.Stats().LengthMismatch != 0 {
				t.Fatal("the client triggered a content-length mismatch")
			}
		})
	}
}
