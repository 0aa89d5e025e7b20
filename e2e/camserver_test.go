package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/faultproxy"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// Camera server: both HTTP/2 connections (JSON calls and the input.raw
// stream) go through the proxy. The durable items are records queued in the
// link's spool (what the snapshot command produces); the live data is the
// camera stream pushed every 50 ms.
const csDevice = "e2e-cam"

type csRig struct {
	lb     *logBuf
	srv    *camservertest.Server
	proxy  *faultproxy.Proxy
	hub    *hub.Hub
	spool  *spool.Spool
	stats  *transport.Stats
	sup    *supervisor.Supervisor
	tr     *tracker
	frames atomic.Int64
	clk    *capClock // the supervisor's and the spool's
	caFile string    // the CA file of a TLS rig (startCamserverWith)

	mu   sync.Mutex
	want map[string]string // record payload → name
}

func startCamserver(t *testing.T) (rig, error) {
	r, err := startCamserverWith(t, false)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// startCamserverWith is startCamserver, over TLS (https through the proxy,
// the fake's CA in ca_file, r.caFile) when tls is set.
func startCamserverWith(t *testing.T, tls bool) (*csRig, error) {
	r := &csRig{lb: &logBuf{}, tr: newTracker(), want: map[string]string{}, clk: &capClock{}}
	log := newLogger(r.lb)
	var err error
	if r.srv, err = camservertest.New("127.0.0.1:0", camservertest.Options{Logger: log, TLS: tls}); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = r.srv.Close() })
	// A per-minute budget large enough for 50 ms polls and heartbeats: the
	// faults under test are the injected ones, not the budget.
	r.srv.SetLimit(4, 60000, true)
	r.srv.SetFrameHook(func(string, []byte) { r.frames.Add(1) })
	if r.proxy, err = faultproxy.New(faultproxy.Options{Target: r.srv.Addr(), Logger: log}); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = r.proxy.Close() })
	cc := synthetic.Config{Signal: synthetic.SignalCamera, FPS: 20}
	cc.SetDefaults()
	r.hub = agenttest.Hub(t, log, synthetic.NewCamera("cam", cc))
	r.spool = agenttest.Spool(t, spool.Options{Logger: log, Clock: r.clk})
	deps := agenttest.Deps(t, "cs", r.hub, log)
	deps.Device = transport.Device{Name: csDevice}
	deps.Spool, deps.Version, r.stats = r.spool, "e2e", deps.Stats
	cfg := camserver.Config{URL: "http://" + r.proxy.Addr(), User: camservertest.DemoUser, Password: camservertest.DemoPassword,
		Device: csDevice, Poll: conf.Duration(50 * time.Millisecond), Heartbeat: conf.Duration(40 * time.Millisecond),
		Stream: camserver.Stream{Sensor: "cam"}}
	if tls {
		r.caFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(r.caFile, r.srv.CAPEM(), 0o600); err != nil {
			return nil, err
		}
		cfg.URL, cfg.CAFile = "https://"+r.proxy.Addr(), r.caFile
	}
	cfg.SetDefaults()
	cfg.Stream.Delta = conf.Duration(50 * time.Millisecond) // below Validate's floor: faster detection
	link, err := camserver.New(cfg, deps,
		camserver.Options{Watchdog: 300 * time.Millisecond, StreamRetry: fastRetry, Deliver: fastRetry})
	if err != nil {
		return nil, err
	}
	r.sup = runLink(t, "camserver", link, deps, r.clk)
	return r, nil
}

func (r *csRig) status() supervisor.Status { return r.sup.Status() }
func (r *csRig) logs() string              { return r.lb.String() }

// record queues a record as the snapshot command does and counts it as
// produced.
func (r *csRig) record(name string) error {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	payload := "\xff\xd8 e2e " + name + " " + hex.EncodeToString(b) + " \xff\xd9"
	if _, err := r.spool.Put("record", map[string]string{"meta": "JPEG"}, strings.NewReader(payload)); err != nil {
		return err
	}
	r.mu.Lock()
	r.want[payload] = name
	r.mu.Unlock()
	r.tr.produce(name)
	return nil
}

func (r *csRig) collect() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.srv.Records() {
		if name, ok := r.want[string(rec.Data)]; ok && rec.Device == csDevice && rec.Meta == "JPEG" {
			r.tr.deliver(name)
		}
	}
}

func (r *csRig) delivered(ctx context.Context, name string) error {
	return agenttest.Poll(ctx, "record "+name, func() bool {
		r.collect()
		return r.tr.isDelivered(name)
	})
}

// streaming waits for at least two more frames than n at the fake.
func (r *csRig) streaming(ctx context.Context, n int64) error {
	return agenttest.Poll(ctx, "stream frames", func() bool { return r.frames.Load() >= n+2 })
}

// healthy checks the data path: the link is up, frames arrive and a new
// record is delivered.
func (r *csRig) healthy(ctx context.Context, name string) error {
	if err := waitUp(ctx, r.sup); err != nil {
		return err
	}
	if err := r.streaming(ctx, r.frames.Load()); err != nil {
		return err
	}
	if err := r.record(name); err != nil {
		return err
	}
	return r.delivered(ctx, name)
}

func (r *csRig) warm(ctx context.Context) error { return r.healthy(ctx, "warm") }

func (r *csRig) once(ctx context.Context, kind string, i int) error {
	st := r.sup.Status()
	ss := r.srv.Stats()
	pre, post := fmt.Sprintf("pre-%03d", i), fmt.Sprintf("post-%03d", i)
	if err := r.record(pre); err != nil {
		return err
	}
	// The link noticed when its supervisor session ended, or (the server
	// session surviving a transport break by design) the stream was
	// reopened or the session re-authorized.
	noticed := func() error {
		return agenttest.Poll(ctx, "the link to notice the fault", func() bool {
			now := r.srv.Stats()
			return r.sup.Status().Reconnects > st.Reconnects || now.StreamsOpened > ss.StreamsOpened ||
				now.Authorizations > ss.Authorizations || r.stats.Details()["stream"] != "on"
		})
	}
	reauth := false
	switch kind {
	case faultKill:
		r.proxy.Refuse(true)
		err := r.srv.Restart() // every connection and stream dropped; the database survives
		if err == nil {
			err = noticed()
		}
		r.proxy.Refuse(false)
		if err != nil {
			return err
		}
	case faultReset:
		r.proxy.Reset()
		if err := noticed(); err != nil {
			return err
		}
	case faultStall:
		r.proxy.Stall(true)
		err := noticed() // the stream watchdog
		r.proxy.Stall(false)
		if err != nil {
			return err
		}
	case faultBad:
		// The request-limit pass: the session is over its per-minute
		// budget, so the server deletes it and drops the connections;
		// the next call answers BAD NO_SUCH_SESSION. The limit is lowered
		// only for the pass, with the proxy stalled meanwhile: a link
		// re-authorizing in between would read the account limit of 1
		// request a minute and rightly pace itself to it (seen in a
		// 300-fault run), which is not the fault under test.
		r.proxy.Stall(true)
		r.srv.SetLimit(4, 1, true)
		r.srv.Maintain()
		r.srv.SetLimit(4, 60000, true)
		r.proxy.Stall(false)
		reauth = true
	case faultCreds:
		// The session id expires (deleted server-side, stream dropped on
		// the next pass): BAD NO_SUCH_SESSION, re-authorize.
		r.srv.DeleteSessions(csDevice)
		r.srv.Maintain()
		reauth = true
	case faultSlow:
		r.proxy.Slow(slowLatency, slowRate)
		err := r.delivered(ctx, pre)
		if err == nil {
			err = r.streaming(ctx, r.frames.Load())
		}
		r.proxy.Slow(0, 0)
		if err != nil {
			return fmt.Errorf("on the slow network: %w", err)
		}
		return r.healthy(ctx, post)
	default:
		return r.trustOnce(ctx, kind, i, st, ss, pre, post) // trust_http_test.go
	}
	if reauth {
		if err := agenttest.Poll(ctx, "re-authorization", func() bool { return r.srv.Stats().Authorizations > ss.Authorizations }); err != nil {
			return err
		}
	}
	if err := agenttest.Poll(ctx, "the stream reopened", func() bool { return r.srv.Stats().StreamsOpened > ss.StreamsOpened }); err != nil {
		return err
	}
	if err := r.delivered(ctx, pre); err != nil {
		return err
	}
	return r.healthy(ctx, post)
}

func (r *csRig) drain(ctx context.Context) error {
	err := agenttest.Poll(ctx, "spool empty and every record delivered", func() bool {
		r.collect()
		return r.spool.Stats().Items == 0 && len(r.tr.missing()) == 0
	})
	if err != nil {
		return fmt.Errorf("%w: spool %+v, missing %v", err, r.spool.Stats(), r.tr.missing())
	}
	return nil
}

func (r *csRig) ledger() ledger {
	l := r.tr.ledger()
	l.live = true
	l.liveRecv = r.frames.Load()
	for _, s := range r.hub.Stats() {
		if s.Name == "cam" {
			l.liveSrc, l.liveDrop = int64(s.Samples), int64(s.Dropped)
		}
	}
	return l
}
