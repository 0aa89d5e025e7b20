package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/faultproxy"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// RTM: the signalling WebSocket goes through the proxy; media is WebRTC over
// UDP on loopback, directly between the link's and the fake's pion peers
// (the proxy is TCP). Recording is manual (off): the durable recordings are
// made and uploaded by the service, not by the agent, so this link has live
// data only.
const (
	rtmDeviceKey = "e2e-rtm-device-key-0123456789"
	// rtmPing is the fake's ping period; the link gives up after 3 missed
	// pings (300 ms), which a loaded -race machine does not trip by itself.
	rtmPing = 100 * time.Millisecond
)

// rtmCauses are the TERMINATED causes the fake sends as the service's error
// answers, in turn.
var rtmCauses = []string{rtm.CauseConnError, rtm.CauseServiceShutdown, rtm.CausePeerConnFailed,
	rtm.CauseNoPacketReceived, rtm.CauseConnTimeout, rtm.CauseTwoTimer, rtm.CauseSDPError, "SOMETHING_NEW"}

type rtmRig struct {
	lb    *logBuf
	proxy *faultproxy.Proxy
	hub   *hub.Hub
	sup   *supervisor.Supervisor
	addr  string
	dir   string
	clk   *capClock // the supervisor's

	secret []byte // signs the fakes' tokens, so they outlive a restart like the service's

	mu       sync.Mutex
	fake     *rtmtest.Server
	pastRecv int64 // video frames received by fakes already closed
}

func startRTM(t *testing.T) (rig, error) {
	r := &rtmRig{lb: &logBuf{}, dir: t.TempDir(), secret: []byte("e2e-rtm-token-signing-secret"), clk: &capClock{}}
	log := newLogger(r.lb)
	fake, err := r.newFake("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.fake, r.addr = fake, fake.Addr()
	t.Cleanup(func() { _ = r.server().Close() }) // the fake of the moment (refreshFake replaces it)
	if r.proxy, err = faultproxy.New(faultproxy.Options{Target: r.addr, Logger: log}); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = r.proxy.Close() })
	vc := synthetic.Config{Signal: synthetic.SignalH264}
	vc.SetDefaults()
	video, err := synthetic.NewH264("video", vc)
	if err != nil {
		return nil, err
	}
	ac := synthetic.Config{Signal: synthetic.SignalAudio}
	ac.SetDefaults()
	r.hub = agenttest.Hub(t, log, video, synthetic.NewAudio("mic", ac))
	deps := agenttest.Deps(t, "recorder", r.hub, log)
	deps.Device = transport.Device{ID: "e2e-1"}
	deps.Spool, deps.Version = agenttest.Spool(t, spool.Options{Logger: log}), "e2e"
	// The token comes from token_url (our backend, served by the fake) through
	// the proxy too: an expired one is renewed on the 401.
	cfg := rtm.Config{URL: "ws://" + r.proxy.Addr() + "/api/v2/io", ClientID: "e2e-1",
		TokenURL: "http://" + r.proxy.Addr() + rtmtest.TokenPath, TokenURLKey: rtmDeviceKey,
		Video: "video", Audio: "mic", Record: rtm.Record{Start: "manual"}}
	cfg.SetDefaults()
	link, err := rtm.New(cfg, deps, rtm.Options{
		FirstPingTimeout:  2 * time.Second,
		SetupTimeout:      10 * time.Second,
		StopWait:          200 * time.Millisecond,
		DisconnectedGrace: 300 * time.Millisecond,
		TwoTimerWait:      5 * time.Millisecond,
		SDPErrorWait:      5 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	r.sup = runLink(t, "rtm", link, deps, r.clk)
	return r, nil
}

func (r *rtmRig) newFake(listen string) (*rtmtest.Server, error) {
	dir, err := os.MkdirTemp(r.dir, "fake-")
	if err != nil {
		return nil, err
	}
	return rtmtest.New(listen, rtmtest.Options{DeviceKey: rtmDeviceKey, TokenSecret: r.secret,
		PingInterval: rtmPing, Dir: dir, Logger: newLogger(r.lb)})
}

func (r *rtmRig) server() *rtmtest.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fake
}

func (r *rtmRig) status() supervisor.Status { return r.sup.Status() }
func (r *rtmRig) logs() string              { return r.lb.String() }

// activeCount counts the fake's sessions that reached ACTIVE.
func (r *rtmRig) activeCount() int {
	n := 0
	for _, s := range r.server().Sessions() {
		if slices.Contains(s.States, rtm.StateActive) {
			n++
		}
	}
	return n
}

// healthy waits for a new ACTIVE session (beyond active0) with video and
// audio flowing on the fake's side.
func (r *rtmRig) healthy(ctx context.Context, active0 int, sessions0 uint64) error {
	if err := waitNewSession(ctx, r.sup, sessions0); err != nil {
		return err
	}
	return agenttest.Poll(ctx, "a new ACTIVE session with media flowing", func() bool {
		ss := r.server().Sessions()
		if r.activeCount() <= active0 || len(ss) == 0 {
			return false
		}
		last := ss[len(ss)-1]
		return !last.Ended && slices.Contains(last.States, rtm.StateActive) && last.VideoFrames >= 3 && last.AudioPackets > 0
	})
}

func (r *rtmRig) warm(ctx context.Context) error { return r.healthy(ctx, 0, 0) }

func (r *rtmRig) once(ctx context.Context, kind string, i int) error {
	st := r.sup.Status()
	active0 := r.activeCount()
	switch kind {
	case faultKill:
		old := r.server()
		if err := old.Close(); err != nil {
			return fmt.Errorf("close fake: %w", err)
		}
		r.account(old)
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
		if err := r.restart(); err != nil {
			return err
		}
		active0 = 0 // a fresh fake
	case faultReset:
		r.proxy.Reset()
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
	case faultStall:
		r.proxy.Stall(true)
		err := waitNoticed(ctx, r.sup, st.Reconnects) // no ping for 3 intervals
		r.proxy.Stall(false)
		if err != nil {
			return err
		}
	case faultBad:
		cause := rtmCauses[i%len(rtmCauses)]
		if cause == rtm.CauseSDPError {
			// The next offer is refused too; lift once that happened.
			r.server().SetRejectSDP(true)
		}
		r.server().Terminate(cause)
		err := waitNoticed(ctx, r.sup, st.Reconnects)
		if err == nil && cause == rtm.CauseSDPError {
			err = agenttest.Poll(ctx, "a refused offer", func() bool {
				for _, s := range r.server().Sessions()[active0:] {
					if s.Cause == rtm.CauseSDPError && !slices.Contains(s.States, rtm.StateActive) {
						return true
					}
				}
				return false
			})
		}
		r.server().SetRejectSDP(false)
		if err != nil {
			return fmt.Errorf("after TERMINATED %s: %w", cause, err)
		}
	case faultCreds:
		// Every token expires and the service ends the session: the next
		// set-up meets 401 and must renew the token from token_url.
		f := r.server()
		minted, rejected := f.Minted(), f.Rejected()
		f.ExpireTokens()
		f.DropSockets()
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
		if err := r.healthy(ctx, active0, st.Sessions); err != nil {
			return err
		}
		if f.Rejected() <= rejected || f.Minted() <= minted {
			return fmt.Errorf("up again without a 401 and a new token (401s %d→%d, tokens minted %d→%d)",
				rejected, f.Rejected(), minted, f.Minted())
		}
		return nil
	case faultSlow:
		// Signalling over the slow network: a new session is negotiated
		// through it (offer, answer, candidates, pings).
		r.proxy.Slow(slowLatency, slowRate)
		r.proxy.Reset()
		err := waitNoticed(ctx, r.sup, st.Reconnects)
		if err == nil {
			err = r.healthy(ctx, active0, st.Sessions)
		}
		r.proxy.Slow(0, 0)
		if err != nil {
			return fmt.Errorf("on the slow network: %w", err)
		}
		return nil
	default:
		return r.trustOnce(ctx, kind, i, st, active0) // trust_http_test.go
	}
	return r.healthy(ctx, active0, st.Sessions)
}

// refreshFake replaces the fake by a fresh one on the same address (its
// session history dropped) and waits for the link's new session with media.
func (r *rtmRig) refreshFake(ctx context.Context) error {
	st := r.sup.Status()
	old := r.server()
	if err := old.Close(); err != nil {
		return fmt.Errorf("close fake: %w", err)
	}
	r.account(old)
	if err := r.restart(); err != nil {
		return err
	}
	return r.healthy(ctx, 0, st.Sessions)
}

// account adds the video frames a fake received before it is discarded.
func (r *rtmRig) account(f *rtmtest.Server) {
	var n int64
	for _, s := range f.Sessions() {
		n += s.VideoFrames
	}
	r.mu.Lock()
	r.pastRecv += n
	r.mu.Unlock()
}

// restart starts a new fake on the same address, or behind the proxy on a
// new one (restartFake).
func (r *rtmRig) restart() error {
	f, addr, err := restartFake(r.proxy, r.addr, r.newFake)
	if err != nil {
		return err
	}
	r.addr = addr
	r.mu.Lock()
	r.fake = f
	r.mu.Unlock()
	return nil
}

func (r *rtmRig) drain(context.Context) error { return nil }

func (r *rtmRig) ledger() ledger {
	l := ledger{live: true}
	var recv int64
	for _, s := range r.server().Sessions() {
		recv += s.VideoFrames
	}
	r.mu.Lock()
	l.liveRecv = r.pastRecv + recv
	r.mu.Unlock()
	for _, s := range r.hub.Stats() {
		if s.Name == "video" {
			l.liveSrc, l.liveDrop = int64(s.Samples), int64(s.Dropped)
		}
	}
	return l
}
