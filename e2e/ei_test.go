package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/faultproxy"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// Edge Impulse: the remote-management socket and ingestion both go through
// the proxy; a sample is 5 rows of the synthetic accelerometer at 100 Hz.
const (
	eiLength   = 50 // ms
	eiInterval = 10 // ms
	eiRows     = eiLength / eiInterval
)

type eiRig struct {
	lb    *logBuf
	proxy *faultproxy.Proxy
	hub   *hub.Hub
	spool *spool.Spool
	sup   *supervisor.Supervisor
	clk   *capClock // the supervisor's and the spool's
	// reasked counts samples asked again because the session ended under
	// them by itself (reported in the table).
	reasked atomic.Int64
	tr      *tracker
	addr    string
	// keyFile is the link's api_key_file; key the key the fake accepts.
	keyFile, key string

	mu  sync.Mutex
	srv *eitest.Server
}

func startEI(t *testing.T) (rig, error) {
	r := &eiRig{lb: &logBuf{}, tr: newTracker(), clk: &capClock{}}
	log := newLogger(r.lb)
	srv, err := eitest.New(eitest.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	r.srv, r.addr = srv, srv.Addr()
	t.Cleanup(func() { _ = r.server().Close() }) // the fake of the moment (restart replaces it)
	if r.proxy, err = faultproxy.New(faultproxy.Options{Target: r.addr, Logger: log}); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = r.proxy.Close() })
	mc := synthetic.Config{Signal: synthetic.SignalMotion, Frequencies: []float64{100}, Seed: 3}
	mc.SetDefaults()
	r.hub = agenttest.Hub(t, log, synthetic.NewMotion("accel", mc))
	// Keep the accelerometer running between samples, as another subscriber
	// would: each sample then holds different readings (the fake, like
	// ingestion, refuses a body it already stored as a duplicate).
	if err := keepRunning(t, r.hub, "accel"); err != nil {
		return nil, err
	}
	r.keyFile, r.key = filepath.Join(t.TempDir(), "ei-api-key"), srv.APIKey()
	if err := atomicfile.WriteFile(r.keyFile, []byte(r.key+"\n"), 0o600); err != nil {
		return nil, err
	}
	r.spool = agenttest.Spool(t, spool.Options{Logger: log, Clock: r.clk})
	// Keep-alive: dead after 400 ms of silence. Shorter windows (200 ms)
	// declare healthy sessions dead on a loaded -race CI machine, which
	// makes the data-path checks flaky without testing anything more.
	cfg := edgeimpulse.Config{APIKey: r.key, APIKeyFile: r.keyFile, RemoteMgmtURL: "ws://" + r.proxy.Addr() + "/",
		IngestionURL: "http://" + r.proxy.Addr(), Encoding: "json", Sensors: []string{"accel"},
		PingInterval: conf.Duration(100 * time.Millisecond), PongTimeout: conf.Duration(300 * time.Millisecond)}
	deps := agenttest.Deps(t, "ei", r.hub, log)
	deps.Device = transport.Device{ID: "dc:a6:32:00:00:01", Name: "pi", Type: "RASPBERRY_PI"}
	deps.Spool, deps.Version = r.spool, "e2e"
	link, err := edgeimpulse.New(cfg, deps, edgeimpulse.Options{UploadRetry: fastRetry})
	if err != nil {
		return nil, err
	}
	r.sup = runLink(t, "edgeimpulse", link, deps, r.clk)
	return r, nil
}

func (r *eiRig) server() *eitest.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.srv
}

func (r *eiRig) status() supervisor.Status { return r.sup.Status() }
func (r *eiRig) logs() string              { return r.lb.String() }

// collect marks every verified upload of the current fake as delivered.
func (r *eiRig) collect() {
	for _, u := range r.server().Uploads() {
		if u.Status == 200 && u.File != nil && u.File.Rows == eiRows {
			r.tr.deliver(u.Label)
		}
	}
}

// errSessionEnded: the session carrying a sample request ended before the
// sample reached the awaited stage.
var errSessionEnded = errors.New("the session ended under the sample")

// sample asks for a sample labelled label and waits until the device sent
// stage (sampleUploading: the sample is in the spool; sampleFinished: it was
// delivered), reported a failure, or the session ended (errSessionEnded).
// The sample counts as produced once it reached sampleUploading. It returns
// the failure text, if any.
func (r *eiRig) sample(ctx context.Context, label, stage string) (string, error) {
	srv := r.server()
	r0 := r.sup.Status().Reconnects
	from := len(srv.Messages())
	if err := srv.RequestSample(eitest.SampleRequest{Sensor: "accel", Label: label, Length: eiLength, Interval: eiInterval}); err != nil {
		return "", fmt.Errorf("request sample %s: %w", label, err)
	}
	var failure string
	reached, ended := false, false
	err := agenttest.Poll(ctx, "sample "+label+" to reach "+stage, func() bool {
		msgs := srv.Messages()
		if len(msgs) < from {
			return false
		}
		for _, m := range msgs[from:] {
			switch {
			case m.Type == "sampleUploading":
				r.tr.produce(label)
			case m.Type == "sample" && m.Fields["sample"] == false:
				failure, _ = m.Fields["error"].(string)
				return true
			}
			if m.Type == stage {
				reached = true
				return true
			}
		}
		ended = r.sup.Status().Reconnects != r0
		return ended
	})
	switch {
	case err != nil:
		return "", err
	case reached:
		return "", nil
	case failure != "":
		return failure, nil
	}
	return "", errSessionEnded
}

// ask is sample, asked again while the session ends under it by itself
// before the sample is spooled: a keep-alive miss on a loaded machine, not
// the injected fault (Studio asks again too). The re-asks are counted.
func (r *eiRig) ask(ctx context.Context, label, stage string) (string, error) {
	for {
		if err := agenttest.Poll(ctx, "the fake to see the device", func() bool { return r.server().Connected() }); err != nil {
			return "", err
		}
		r0 := r.sup.Status().Reconnects
		fail, err := r.sample(ctx, label, stage)
		if ctx.Err() != nil || r.tr.isProduced(label) || r.sup.Status().Reconnects == r0 {
			if errors.Is(err, errSessionEnded) && r.tr.isProduced(label) {
				err = nil // spooled: Work delivers it whatever the session does
			}
			return fail, err
		}
		r.reasked.Add(1)
	}
}

// healthy records one sample on a recovered link and waits until the fake
// verified it (signature and rows).
func (r *eiRig) healthy(ctx context.Context, label string) error {
	// sampleFinished, not just spooled: the device takes no new request
	// before it finished this one.
	fail, err := r.ask(ctx, label, "sampleFinished")
	if err != nil {
		return err
	}
	if fail != "" {
		return fmt.Errorf("sample %s failed after recovery: %s", label, fail)
	}
	return agenttest.Poll(ctx, "sample "+label+" verified by the fake", func() bool {
		r.collect()
		return r.tr.isDelivered(label)
	})
}

func (r *eiRig) warm(ctx context.Context) error {
	if err := waitUp(ctx, r.sup); err != nil {
		return err
	}
	return r.healthy(ctx, "warm")
}

func (r *eiRig) once(ctx context.Context, kind string, i int) error {
	st := r.sup.Status()
	pre, post := fmt.Sprintf("pre-%03d", i), fmt.Sprintf("post-%03d", i)
	// A sample recorded and spooled just before the fault, its upload
	// possibly in flight when the fault hits.
	spooled := func() error {
		fail, err := r.ask(ctx, pre, "sampleUploading")
		if err == nil && fail != "" {
			err = fmt.Errorf("sample %s failed before the fault: %s", pre, fail)
		}
		return err
	}
	switch kind {
	case faultKill:
		if err := spooled(); err != nil {
			return err
		}
		r.server().Close()
		r.collect() // what the old fake stored before it died
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
		if err := r.restart(); err != nil {
			return err
		}
	case faultReset:
		if err := spooled(); err != nil {
			return err
		}
		r.proxy.Reset()
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
	case faultStall:
		if err := spooled(); err != nil {
			return err
		}
		r.proxy.Stall(true)
		err := waitNoticed(ctx, r.sup, st.Reconnects) // pong timeout
		r.proxy.Stall(false)
		if err != nil {
			return err
		}
	case faultBad:
		code := []int{500, 502, 503, 504}[i%4]
		r.server().FailUploads(code)
		fail, err := r.ask(ctx, pre, "sampleFinished")
		r.server().FailUploads(0)
		if err != nil {
			return err
		}
		if !r.tr.isProduced(pre) {
			return fmt.Errorf("sample %s was not spooled: %s", pre, fail)
		}
		if fail == "" {
			return fmt.Errorf("sample %s reported finished although ingestion answered %d", pre, code)
		}
		return r.healthy(ctx, post) // the session stays up through 5xx
	case faultCreds:
		// The project owner rotates the API key while a session is up: the
		// sample recorded next meets 401 and is kept; the socket drops and
		// every Hello is refused until the new key is in api_key_file; then
		// the link and the kept sample get through, without a restart.
		r.key = fmt.Sprintf("ei-e2e-key-%03d", i)
		r.server().SetAPIKey(r.key)
		if err := spooled(); err != nil {
			return err
		}
		if err := agenttest.Poll(ctx, "ingestion to refuse "+pre+" with 401", func() bool {
			for _, u := range r.server().Uploads() {
				if u.Label == pre && u.Status == 401 {
					return true
				}
			}
			return false
		}); err != nil {
			return err
		}
		refused := func() int {
			n := 0
			for _, h := range r.server().Hellos() {
				if !h.Accepted {
					n++
				}
			}
			return n
		}
		refused0 := refused()
		r.server().Drop()
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
		if err := agenttest.Poll(ctx, "a refused hello, the link waiting for a new key", func() bool {
			return refused() > refused0 && strings.Contains(r.sup.Status().LastError, "waiting for a new key")
		}); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(r.keyFile, []byte(r.key+"\n"), 0o600); err != nil {
			return err
		}
	case faultSlow:
		r.proxy.Slow(slowLatency, slowRate)
		err := r.healthy(ctx, pre) // the data path works while slow
		r.proxy.Slow(0, 0)
		if err != nil {
			return fmt.Errorf("on the slow network: %w", err)
		}
		return r.healthy(ctx, post)
	default:
		return r.trustOnce(ctx, kind, i) // trust_http_test.go
	}
	if err := waitNewSession(ctx, r.sup, st.Sessions); err != nil {
		return err
	}
	return r.healthy(ctx, post)
}

// restart starts a new fake (accepting the current key) on the same
// address, or behind the proxy on a new one (restartFake).
func (r *eiRig) restart() error {
	srv, addr, err := restartFake(r.proxy, r.addr, func(listen string) (*eitest.Server, error) {
		return eitest.New(eitest.Options{Listen: listen, APIKey: r.key, Logger: newLogger(r.lb)})
	})
	if err != nil {
		return err
	}
	r.addr = addr
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	return nil
}

func (r *eiRig) drain(ctx context.Context) error {
	err := agenttest.Poll(ctx, "spool empty and every sample delivered", func() bool {
		r.collect()
		return r.spool.Stats().Items == 0 && len(r.tr.missing()) == 0
	})
	if err != nil {
		return fmt.Errorf("%w: spool %+v, missing %v", err, r.spool.Stats(), r.tr.missing())
	}
	return nil
}

func (r *eiRig) ledger() ledger {
	l := r.tr.ledger()
	if n := r.reasked.Load(); n > 0 {
		l.note = fmt.Sprintf("%d samples asked again after a spurious reconnect", n)
	}
	return l
}
