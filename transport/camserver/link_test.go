package camserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/agent/agenttest"
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

// rig is one fake server plus one agent link run by the real supervisor
// (agenttest.RunLink) over a real hub with synthetic sensors. Everything it
// starts stops when the test (or subtest) that started it ends.
type rig struct {
	srv    *camservertest.Server
	link   *camserver.Link
	stats  *transport.Stats
	spool  *spool.Spool
	sup    *supervisor.Supervisor
	frames *frameLog
	seen   *frameSet
}

// frameLog keeps every frame payload the fake received on input.raw.
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

// frameSet holds every JPEG the camera produced, collected by a second hub
// subscriber, so a frame or record can be checked byte for byte.
type frameSet struct {
	mu sync.Mutex
	m  map[string]bool
}

// watchFrames subscribes to sensor until the test ends.
func watchFrames(t testing.TB, h sensors.Hub, sensor string) *frameSet {
	t.Helper()
	fs := &frameSet{m: map[string]bool{}}
	watch, err := h.Subscribe(sensor, sensors.SubscribeOptions{Queue: 64, Policy: sensors.NoDrop})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range watch.C() {
			fs.mu.Lock()
			fs.m[string(s.Data)] = true
			fs.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		watch.Close()
		<-done
	})
	return fs
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
	clock    clock.Clock           // the link's clock (default: the wall clock)
}

func newServer(t testing.TB, o camservertest.Options) *camservertest.Server {
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

// sensorHub is a hub with a synthetic camera "cam" (20 fps JPEG stills) and
// a synthetic accelerometer "accel" (100 Hz motion), until the test ends.
func sensorHub(t testing.TB, logger *slog.Logger) *hub.Hub {
	t.Helper()
	camCfg := synthetic.Config{Signal: synthetic.SignalCamera, FPS: 20}
	camCfg.SetDefaults()
	accCfg := synthetic.Config{Signal: synthetic.SignalMotion}
	accCfg.SetDefaults()
	return agenttest.Hub(t, logger, synthetic.NewCamera("cam", camCfg), synthetic.NewMotion("accel", accCfg))
}

func startRig(t testing.TB, o rigOpts) *rig {
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
	h := sensorHub(t, logger)
	sp := agenttest.Spool(t, spool.Options{})
	if o.prespool != nil {
		o.prespool(sp)
	}
	deps := agenttest.Deps(t, "cs", h, logger)
	deps.Spool = sp
	if o.clock != nil {
		deps.Clock = o.clock
	}
	if o.stateDir != "" {
		deps.StateDir = o.stateDir
	}
	cfg := camserver.Config{URL: srv.URL(), User: camservertest.DemoUser, Password: camservertest.DemoPassword,
		Device: device, Poll: conf.Duration(150 * time.Millisecond), Heartbeat: conf.Duration(40 * time.Millisecond),
		Stream: camserver.Stream{Sensor: "cam"}}
	if o.tls {
		cfg.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(cfg.CAFile, srv.CAPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg.SetDefaults()
	// Faster than the 400 ms floor Validate enforces, so a stalled window
	// fills within a fraction of a second.
	cfg.Stream.Delta = conf.Duration(100 * time.Millisecond)
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if o.opts.StreamRetry.Min == 0 {
		o.opts.StreamRetry = retry.Policy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	if o.opts.Deliver.Min == 0 {
		o.opts.Deliver = retry.Policy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	if o.opts.Watchdog == 0 {
		o.opts.Watchdog = 300 * time.Millisecond
	}
	link, err := camserver.New(cfg, deps, o.opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{srv: srv, link: link, stats: deps.Stats, spool: sp, frames: &frameLog{}, seen: watchFrames(t, h, "cam")}
	srv.SetFrameHook(r.frames.add)
	r.sup = agenttest.RunLink(t, "camserver", link, deps)
	return r
}

// isFrame reports whether p is byte for byte one of the camera's JPEGs.
func (r *rig) isFrame(p []byte) bool {
	r.seen.mu.Lock()
	defer r.seen.mu.Unlock()
	return r.seen.m[string(p)]
}

// polls counts the link's message polls at the fake.
func (r *rig) polls() int {
	return r.srv.Calls("/getMsgs.json") + r.srv.Calls("/getMsgsAndSync.json")
}

// morePolls waits until the link has polled n more times: whatever it was
// going to handle from what the fake holds now, it has handled.
func (r *rig) morePolls(t *testing.T, n int) {
	t.Helper()
	p0 := r.polls()
	agenttest.Eventually(t, fmt.Sprintf("%d more polls", n), func() bool { return r.polls() >= p0+n })
}

// handledOnce sends msg from op to the link, waits until the link has
// handled it, lets three more polls run, and checks that the link has then
// handled want messages in all: the new one once, nothing twice.
func (r *rig) handledOnce(t *testing.T, op *camserver.Client, msg string, want int64) {
	t.Helper()
	if err := op.AddMsgs(context.Background(), camserver.Message{Msg: msg, Target: device}); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "message "+msg+" handled", func() bool { return r.stats.MsgsIn.Load() >= want })
	r.morePolls(t, 3)
	if got := r.stats.MsgsIn.Load(); got != want {
		t.Fatalf("messages handled = %d after %q, want %d", got, msg, want)
	}
}

// operator is a second device on the same account, driving the agent with
// messages the way a viewer application would.
func operator(t testing.TB, srv *camservertest.Server, name string) *camserver.Client {
	t.Helper()
	return operatorOn(t, srv, name, nil)
}

// operatorOn is operator with its request budget on clk (nil: the wall clock).
func operatorOn(t testing.TB, srv *camservertest.Server, name string, clk clock.Clock) *camserver.Client {
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
		Password: camservertest.DemoPassword, Device: name, Clock: clk})
	if err := c.Authorize(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLink runs one link against the fake over h2c and over TLS, and walks
// through what it does for a viewer: session and stream, the account API
// the viewer uses beside it, messages handled once each, the status reply,
// a snapshot as a record, stream stop and start. The subtests share the rig
// and run in order; each waits for what it needs, and the last checks that
// the link handled exactly the messages the others sent.
func TestLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"h2c", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRig(t, rigOpts{tls: tc.tls})
			ctx := context.Background()
			op := operator(t, r.srv, "viewer-app")
			sent := 0 // messages addressed to the link so far
			send := func(t *testing.T, msgs ...camserver.Message) {
				t.Helper()
				if err := op.AddMsgs(ctx, msgs...); err != nil {
					t.Fatal(err)
				}
				sent += len(msgs)
			}
			streamOn := func() bool { return r.stats.Details()["stream"] == "on" }

			t.Run("session and stream", func(t *testing.T) {
				agenttest.Eventually(t, "authorize", func() bool { return r.srv.Stats().Authorizations >= 1 })
				agenttest.Eventually(t, "heartbeats", func() bool { return r.srv.Calls("/heartBit.json") >= 2 })
				agenttest.Eventually(t, "stream frames", func() bool { return r.frames.n() >= 3 })
				for i, f := range r.frames.all() {
					if !r.isFrame(f) {
						t.Fatalf("stream frame %d (%d bytes) is not a camera JPEG", i, len(f))
					}
				}
				if !streamOn() {
					t.Errorf("stream detail = %q, want on", r.stats.Details()["stream"])
				}
			})

			t.Run("a message from the agent", func(t *testing.T) {
				// What a rule sends (agent/rules): the other devices read it.
				err := r.link.SendMessage(ctx, camserver.Message{Msg: "detected", Params: json.RawMessage(`{"label":"visitor","score":0.9}`)})
				if err != nil {
					t.Fatal(err)
				}
				var got []camserver.Message
				agenttest.Eventually(t, "the operator reads it", func() bool {
					msgs, err := op.GetMsgs(ctx, camserver.SyncToken, false)
					for _, m := range msgs {
						if m.Msg == "detected" && m.Device == device {
							got = append(got, m)
						}
					}
					return err == nil && len(got) > 0
				})
				if !strings.Contains(string(got[0].Params), `"label":"visitor"`) {
					t.Errorf("params = %s", got[0].Params)
				}
				if err := r.link.SendMessage(ctx, camserver.Message{Msg: "bad", Params: json.RawMessage(`"text"`)}); err == nil {
					t.Error("params that are not an object were sent")
				}
			})

			t.Run("account API beside the link", func(t *testing.T) {
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
				agenttest.Eventually(t, "stream on", streamOn)
				streams, err := op.GetStreams(ctx)
				if err != nil || len(streams) != 1 || streams[0].Device != device || streams[0].Subproto != "RAW_JPEG" {
					t.Fatalf("getStreams = %+v, %v", streams, err)
				}
				online, err := op.GetDevicesOnline(ctx)
				if err != nil || len(online) != 2 {
					t.Fatalf("getDevicesOnline = %+v, %v", online, err)
				}
			})

			t.Run("messages and status reply", func(t *testing.T) {
				// 70 plain messages (three pages) and a status request; the
				// agent must handle each once.
				var msgs []camserver.Message
				for i := range 70 {
					msgs = append(msgs, camserver.Message{Msg: "note", Target: device, Params: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
				}
				send(t, msgs...)
				agenttest.Eventually(t, "stream on", streamOn)
				send(t, camserver.Message{Msg: camserver.CmdStatus, Target: device, Params: json.RawMessage(`{"id":"q1"}`)})
				agenttest.Eventually(t, "every message handled", func() bool { return r.stats.MsgsIn.Load() >= int64(sent) })
				var reply *camserver.Status
				stamp := camserver.SyncToken
				agenttest.Eventually(t, "status reply", func() bool {
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
			})

			t.Run("snapshot becomes a record", func(t *testing.T) {
				send(t, camserver.Message{Msg: camserver.CmdSnapshot, Target: device})
				agenttest.Eventually(t, "record", func() bool { return len(r.srv.Records()) == 1 })
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
				if _, err := op.GetRecordData(ctx, recs[0].RID); !errors.Is(err, camserver.ErrNoSuchRecord) {
					t.Fatalf("deleted record: %v, want NO_SUCH_RECORD", err)
				}
			})

			t.Run("stream stop and start", func(t *testing.T) {
				agenttest.Eventually(t, "stream on", streamOn)
				send(t, camserver.Message{Msg: camserver.CmdStreamStop, Target: device})
				agenttest.Eventually(t, "stream off", func() bool { return r.stats.Details()["stream"] == "off" })
				opened := r.srv.Stats().StreamsOpened
				send(t, camserver.Message{Msg: camserver.CmdStreamStart, Target: device})
				agenttest.Eventually(t, "stream reopened", func() bool { return r.srv.Stats().StreamsOpened > opened && streamOn() })
			})

			t.Run("each message handled once", func(t *testing.T) {
				if handled := r.stats.MsgsIn.Load(); handled != int64(sent) {
					t.Fatalf("messages handled = %d, want the %d sent", handled, sent)
				}
				if r.srv.Stats().LengthMismatch != 0 {
					t.Fatal("the client triggered a content-length mismatch")
				}
			})
		})
	}
}
