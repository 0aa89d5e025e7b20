package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/clock"
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

func eiSpec() linkSpec {
	return linkSpec{name: "edgeimpulse", start: startEI}
}

type eiRig struct {
	lb    *logBuf
	proxy *faultproxy.Proxy
	hub   *hub.Hub
	spool *spool.Spool
	sr    *supRun
	clk   *capClock // the supervisor's and the spool's
	keep  func()
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
	if r.proxy, err = faultproxy.New(faultproxy.Options{Target: r.addr, Logger: log}); err != nil {
		srv.Close()
		return nil, err
	}
	r.hub = hub.New(hub.Options{Logger: log})
	mc := synthetic.Config{Signal: synthetic.SignalMotion, Frequencies: []float64{100}, Seed: 3}
	mc.SetDefaults()
	if err := r.hub.Add(synthetic.NewMotion("accel", mc)); err != nil {
		r.closeAll()
		return nil, err
	}
	// Keep the accelerometer running between samples, as another subscriber
	// would: each sample then holds different readings (the fake, like
	// ingestion, refuses a body it already stored as a duplicate).
	if r.keep, err = keepRunning(r.hub, "accel"); err != nil {
		r.closeAll()
		return nil, err
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		r.closeAll()
		return nil, err
	}
	r.keyFile, r.key = filepath.Join(dir, "ei-api-key"), srv.APIKey()
	if err := atomicfile.WriteFile(r.keyFile, []byte(r.key+"\n"), 0o600); err != nil {
		r.closeAll()
		return nil, err
	}
	if r.spool, err = spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: log, Clock: r.clk}); err != nil {
		r.closeAll()
		return nil, err
	}
	// Keep-alive: dead after 400 ms of silence. Shorter windows (200 ms)
	// declare healthy sessions dead on a loaded -race CI machine, which
	// makes the data-path checks flaky without testing anything more.
	cfg := edgeimpulse.Config{APIKey: r.key, APIKeyFile: r.keyFile, RemoteMgmtURL: "ws://" + r.proxy.Addr() + "/",
		IngestionURL: "http://" + r.proxy.Addr(), Encoding: "json", Sensors: []string{"accel"},
		PingInterval: conf.Duration(100 * time.Millisecond), PongTimeout: conf.Duration(300 * time.Millisecond)}
	deps := transport.Deps{Name: "ei", Logger: log, Hub: r.hub,
		Device:   transport.Device{ID: "dc:a6:32:00:00:01", Name: "pi", Type: "RASPBERRY_PI"},
		StateDir: filepath.Join(dir, "state"), Spool: r.spool, Stats: &transport.Stats{}, Clock: clock.Real{}, Version: "e2e"}
	link, err := edgeimpulse.New(cfg, deps, edgeimpulse.Options{UploadRetry: fastRetry})
	if err != nil {
		r.closeAll()
		return nil, err
	}
	r.sr = runSupervisor("ei", "edgeimpulse", link, log, r.clk)
	return r, nil
}

func (r *eiRig) server() *eitest.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.srv
}

func (r *eiRig) status() supervisor.Status { return r.sr.sup.Status() }
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
	r0 := r.sr.sup.Status().Reconnects
	from := len(srv.Messages())
	if err := srv.RequestSample(eitest.SampleRequest{Sensor: "accel", Label: label, Length: eiLength, Interval: eiInterval}); err != nil {
		return "", fmt.Errorf("request sample %s: %w", label, err)
	}
	var failure string
	reached, ended := false, false
	err := poll(ctx, "sample "+label+" to reach "+stage, func() bool {
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
		ended = r.sr.sup.Status().Reconnects != r0
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
		if err := poll(ctx, "the fake to see the device", func() bool { return r.server().Connected() }); err != nil {
			return "", err
		}
		r0 := r.sr.sup.Status().Reconnects
		fail, err := r.sample(ctx, label, stage)
		if ctx.Err() != nil || r.tr.isProduced(label) || r.sr.sup.Status().Reconnects == r0 {
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
	return poll(ctx, "sample "+label+" verified by the fake", func() bool {
		r.collect()
		return r.tr.isDelivered(label)
	})
}

func (r *eiRig) warm(ctx context.Context) error {
	if err := waitUp(ctx, r.sr.sup); err != nil {
		return err
	}
	return r.healthy(ctx, "warm")
}

func (r *eiRig) once(ctx context.Context, kind string, i int) error {
	st := r.sr.sup.Status()
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
		if err := waitNoticed(ctx, r.sr.sup, st.Reconnects); err != nil {
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
		if err := waitNoticed(ctx, r.sr.sup, st.Reconnects); err != nil {
			return err
		}
	case faultStall:
		if err := spooled(); err != nil {
			return err
		}
		r.proxy.Stall(true)
		err := waitNoticed(ctx, r.sr.sup, st.Reconnects) // pong timeout
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
		if err := poll(ctx, "ingestion to refuse "+pre+" with 401", func() bool {
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
		if err := waitNoticed(ctx, r.sr.sup, st.Reconnects); err != nil {
			return err
		}
		if err := poll(ctx, "a refused hello, the link waiting for a new key", func() bool {
			return refused() > refused0 && strings.Contains(r.sr.sup.Status().LastError, "waiting for a new key")
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
	if err := waitNewSession(ctx, r.sr.sup, st.Sessions); err != nil {
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
	err := poll(ctx, "spool empty and every sample delivered", func() bool {
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

func (r *eiRig) close() {
	r.sr.stop()
	r.closeAll()
}

func (r *eiRig) closeAll() {
	if r.keep != nil {
		r.keep()
	}
	if r.hub != nil {
		r.hub.Close()
	}
	if r.proxy != nil {
		r.proxy.Close()
	}
	r.server().Close()
}
