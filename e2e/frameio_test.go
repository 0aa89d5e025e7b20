package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/faultproxy"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// Frame.io: the REST API, the Phoenix socket and the presigned part PUTs all
// go through the proxy. Assets are files dropped into watch_dir (the link's
// own producer path: watch → spool → create → parts), 6 KiB of random bytes
// each, so every asset is two 4 KiB-target parts and its SHA-256 proves it
// arrived intact.
const fioAssetSize = 6 << 10

type fioRig struct {
	lb    *logBuf
	fake  *frameiotest.Server
	proxy *faultproxy.Proxy
	spool *spool.Spool
	sup   *supervisor.Supervisor
	tr    *tracker
	watch string
	clk   *capClock // the supervisor's and the spool's

	mu   sync.Mutex
	want map[string]string // asset name → SHA-256 of the file written
}

func fioOptions() frameio.Options {
	return frameio.Options{
		Heartbeat:     50 * time.Millisecond,
		DeadAfter:     250 * time.Millisecond,
		JoinTimeout:   2 * time.Second,
		IdentityEvery: time.Minute,
		Rejoin:        fastRetry,
		NotPairedWait: 50 * time.Millisecond,
		Deliver:       fastRetry,
		PartRetry:     fastRetry,
		MinPartSize:   1 << 10,
		PartSize:      4 << 10,
		WatchEvery:    10 * time.Millisecond,
		ClockWait:     20 * time.Millisecond,
	}
}

func startFrameio(t *testing.T) (rig, error) {
	r := &fioRig{lb: &logBuf{}, tr: newTracker(), want: map[string]string{}, clk: &capClock{}}
	log := newLogger(r.lb)
	var err error
	if r.fake, err = frameiotest.New(frameiotest.Options{Logger: log}); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = r.fake.Close() })
	addr := r.fake.URL()[len("http://"):]
	if r.proxy, err = faultproxy.New(faultproxy.Options{Target: addr, Logger: log}); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = r.proxy.Close() })
	r.watch = filepath.Join(t.TempDir(), "watch")
	if err := os.Mkdir(r.watch, 0o700); err != nil {
		return nil, err
	}
	r.spool = agenttest.Spool(t, spool.Options{Logger: log, Clock: r.clk})
	deps := agenttest.Deps(t, "fio", nil, log)
	deps.Spool, deps.Version = r.spool, "e2e"
	cfg := frameio.Config{APIURL: "http://" + r.proxy.Addr(), SocketURL: "ws://" + r.proxy.Addr() + "/devices/websocket",
		ClientID: r.fake.ClientID(), ClientSecret: r.fake.ClientSecret()}
	cfg.SetDefaults()
	cfg.Upload.WatchDir = r.watch
	cfg.Upload.Parallel = 2
	// Paired: the tokens `edge-agent pair` would have stored.
	a, rt, exp := r.fake.IssueTokens()
	now := time.Now().UTC()
	if err := frameio.SaveTokens(frameio.TokenPath(&cfg, deps.StateDir), &frameio.Tokens{AccessToken: a, RefreshToken: rt,
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(exp) * time.Second)}); err != nil {
		return nil, err
	}
	link, err := frameio.New(cfg, deps, fioOptions())
	if err != nil {
		return nil, err
	}
	r.sup = runLink(t, "frameio", link, deps, r.clk)
	return r, nil
}

func (r *fioRig) status() supervisor.Status { return r.sup.Status() }
func (r *fioRig) logs() string              { return r.lb.String() }

// drop writes a new asset file into watch_dir (atomically: the watcher never
// sees it half-written) and records it as produced.
func (r *fioRig) drop(name string) error {
	b := make([]byte, fioAssetSize)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	tmp := filepath.Join(filepath.Dir(r.watch), name+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(r.watch, name)); err != nil {
		return err
	}
	r.mu.Lock()
	r.want[name] = hex.EncodeToString(sum[:])
	r.mu.Unlock()
	r.tr.produce(name)
	return nil
}

// collect marks complete assets whose bytes match as delivered.
func (r *fioRig) collect() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.fake.Assets() {
		if a.Complete && a.SHA256 == r.want[a.Name] {
			r.tr.deliver(a.Name)
		}
	}
}

func (r *fioRig) delivered(ctx context.Context, name string) error {
	return agenttest.Poll(ctx, "asset "+name+" complete and intact", func() bool {
		r.collect()
		return r.tr.isDelivered(name)
	})
}

// healthy creates an asset after recovery and waits for it intact.
func (r *fioRig) healthy(ctx context.Context, name string) error {
	if err := r.drop(name); err != nil {
		return err
	}
	return r.delivered(ctx, name)
}

func (r *fioRig) warm(ctx context.Context) error {
	if err := waitUp(ctx, r.sup); err != nil {
		return err
	}
	return r.healthy(ctx, "warm.bin")
}

func (r *fioRig) once(ctx context.Context, kind string, i int) error {
	st := r.sup.Status()
	pre, post := fmt.Sprintf("pre-%03d.bin", i), fmt.Sprintf("post-%03d.bin", i)
	// An asset created just before the fault: it is being watched, spooled
	// or uploaded when the fault hits.
	if err := r.drop(pre); err != nil {
		return err
	}
	switch kind {
	case faultKill:
		// The server goes away (connections refused, every socket dropped)
		// and comes back on the same address with its state, as after a
		// restart behind a stable name.
		r.proxy.Refuse(true)
		if err := r.fake.Restart(); err != nil {
			r.proxy.Refuse(false)
			return fmt.Errorf("restart fake: %w", err)
		}
		r.proxy.Reset()
		err := waitNoticed(ctx, r.sup, st.Reconnects)
		r.proxy.Refuse(false)
		if err != nil {
			return err
		}
	case faultReset:
		r.proxy.Reset()
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
	case faultStall:
		r.proxy.Stall(true)
		err := waitNoticed(ctx, r.sup, st.Reconnects) // DeadAfter
		r.proxy.Stall(false)
		if err != nil {
			return err
		}
	case faultBad:
		// 5xx on asset create and on a part PUT; the session is not
		// affected, the asset must still arrive.
		r.fake.FailCreates(frameiotest.Fault{Status: []int{500, 502, 503, 504}[i%4]})
		r.fake.FailParts(1)
		if err := r.delivered(ctx, pre); err != nil {
			return err
		}
		return r.healthy(ctx, post)
	case faultCreds:
		// Every access token becomes invalid (REST 401, socket upgrade
		// 403) and the socket drops: the link must refresh and rejoin.
		refreshes := r.fake.Stats().Refreshes
		r.fake.ExpireAccessTokens()
		r.proxy.Cut()
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
		if err := agenttest.Poll(ctx, "a token refresh", func() bool { return r.fake.Stats().Refreshes > refreshes }); err != nil {
			return err
		}
	case faultSlow:
		r.proxy.Slow(slowLatency, slowRate)
		err := r.delivered(ctx, pre)
		r.proxy.Slow(0, 0)
		if err != nil {
			return fmt.Errorf("on the slow network: %w", err)
		}
		return r.healthy(ctx, post)
	default:
		return r.trustOnce(ctx, kind, i, pre, post) // trust_http_test.go
	}
	if err := waitNewSession(ctx, r.sup, st.Sessions); err != nil {
		return err
	}
	if err := r.delivered(ctx, pre); err != nil {
		return err
	}
	return r.healthy(ctx, post)
}

func (r *fioRig) drain(ctx context.Context) error {
	err := agenttest.Poll(ctx, "spool empty and every asset intact", func() bool {
		r.collect()
		return r.spool.Stats().Items == 0 && len(r.tr.missing()) == 0
	})
	if err != nil {
		return fmt.Errorf("%w: spool %+v, missing %v", err, r.spool.Stats(), r.tr.missing())
	}
	return nil
}

func (r *fioRig) ledger() ledger { return r.tr.ledger() }
