package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/faultproxy"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// The issue 13 fault cases of the links that are not network faults: a
// single 4xx where a link used to fail for good (or drop data), a ca_file
// missing at a re-dial, and the camera server's DATABASE_FAIL on getMsgs.
// Each runs like a cell of TestFault (FAULT_COUNT iterations, the ledger,
// goroutines and heap checked by runCell), with its own fault in place of
// the table's kinds. The names match both -run Fault and -run Trust.

// faultRig is a rig whose once injects fault instead of a table kind.
type faultRig struct {
	rig
	fault   func(ctx context.Context, i int) error
	refresh func(ctx context.Context) error // the fakeRefresher of the wrapped rig, if any
}

func (r *faultRig) once(ctx context.Context, _ string, i int) error { return r.fault(ctx, i) }

// refreshableRig is a faultRig that passes settleFake's refresh on.
type refreshableRig struct{ *faultRig }

func (r refreshableRig) refreshFake(ctx context.Context) error { return r.refresh(ctx) }

func (r *faultRig) asRig() rig {
	if r.refresh != nil {
		return refreshableRig{r}
	}
	return r
}

// runTrustCells runs one cell per link kind of starts with kind as its name
// in the table.
func runTrustCells(t *testing.T, kind string, starts map[string]startFunc) {
	n := faultCount(t)
	var (
		mu      sync.Mutex
		results []result
	)
	for _, spec := range specsOf(starts) {
		t.Run(spec.name, func(t *testing.T) {
			res := runCell(t, spec, kind, n)
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		})
	}
	t.Log("\n" + renderTable(results, n))
}

// notFailed turns a link that failed for good into an iteration error at
// once (instead of a 30 s timeout).
func notFailed(s *supervisor.Supervisor) error {
	if st := s.Status(); st.State == supervisor.Failed {
		return fmt.Errorf("link failed for good: %s", st.LastError)
	}
	return nil
}

// frontBehind puts a faultproxy.Front between the rig's TCP proxy and the
// fake at base (http://host:port): the link's traffic still crosses the
// proxy, and the front can answer single requests itself. t's cleanup
// closes it.
func frontBehind(t *testing.T, proxy *faultproxy.Proxy, base string) (*faultproxy.Front, error) {
	front, err := faultproxy.NewFront(base)
	if err != nil {
		return nil, err
	}
	t.Cleanup(front.Close)
	proxy.SetTarget(front.Addr())
	proxy.Reset() // live connections go through the front from now on
	return front, nil
}

// TestTrustFaultSingle4xx: one 4xx where links used to give up: camserver
// authorize 404/405 (failed for good), Frame.io refresh 404/408 (failed,
// "re-pair needed") and a bare 400 on asset create (asset dropped), RTM
// token_url 401/403 (failed), Edge Impulse ingestion 404/405/410/421
// (sample dropped). Each iteration must recover with nothing lost.
func TestTrustFaultSingle4xx(t *testing.T) {
	runTrustCells(t, "single 4xx", map[string]startFunc{
		"edgeimpulse": startEI4xx,
		"frameio":     startFrameio4xx,
		"camserver":   startCamserver4xx,
		"rtm":         startRTM4xx,
	})
}

func startEI4xx(t *testing.T) (rig, error) {
	base, err := startEI(t)
	if err != nil {
		return nil, err
	}
	r := base.(*eiRig)
	fr := &faultRig{rig: r}
	fr.fault = func(ctx context.Context, i int) error {
		pre, post := fmt.Sprintf("pre-%03d", i), fmt.Sprintf("post-%03d", i)
		code := []int{404, 405, 410, 421}[i%4]
		r.server().FailUploads(code)
		_, err := r.ask(ctx, pre, "sampleUploading")
		if err == nil {
			err = agenttest.Poll(ctx, fmt.Sprintf("ingestion to answer %s with %d", pre, code), func() bool {
				for _, u := range r.server().Uploads() {
					if u.Label == pre && u.Status == code {
						return true
					}
				}
				return false
			})
		}
		r.server().FailUploads(0)
		if err != nil {
			return err
		}
		if err := agenttest.Poll(ctx, "sample "+pre+" kept and delivered", func() bool {
			r.collect()
			return r.tr.isDelivered(pre) || r.spool.Stats().Rejected > 0
		}); err != nil {
			return err
		}
		if n := r.spool.Stats().Rejected; n > 0 {
			return fmt.Errorf("%d samples dropped after a %d", n, code)
		}
		return r.healthy(ctx, post)
	}
	return fr.asRig(), nil
}

func startFrameio4xx(t *testing.T) (rig, error) {
	base, err := startFrameio(t)
	if err != nil {
		return nil, err
	}
	r := base.(*fioRig)
	front, err := frontBehind(t, r.proxy, r.fake.URL())
	if err != nil {
		return nil, err
	}
	fr := &faultRig{rig: r}
	fr.fault = func(ctx context.Context, i int) error {
		st := r.sup.Status()
		pre, post := fmt.Sprintf("pre-%03d.bin", i), fmt.Sprintf("post-%03d.bin", i)
		if i%2 == 0 {
			// A bare 400 page on the next asset create: the asset is kept.
			front.FailNext("/v2/devices/assets", http.StatusBadRequest, 1, "<html><body>400 Bad Request</body></html>")
			if err := r.drop(pre); err != nil {
				return err
			}
			if err := r.delivered(ctx, pre); err != nil {
				return err
			}
			if front.Pending() != 0 {
				return fmt.Errorf("the 400 was never answered")
			}
			return r.healthy(ctx, post)
		}
		// The access token expires and the socket drops; the refresh meets
		// a single 404 or 408 before it gets through.
		if err := r.drop(pre); err != nil {
			return err
		}
		refreshes := r.fake.Stats().Refreshes
		front.FailNext("/v2/auth/token", []int{http.StatusNotFound, http.StatusRequestTimeout}[(i/2)%2], 1, "")
		r.fake.ExpireAccessTokens()
		r.proxy.Cut()
		if err := agenttest.Poll(ctx, "a refresh after the refused one", func() bool {
			return notFailed(r.sup) != nil || r.fake.Stats().Refreshes > refreshes
		}); err != nil {
			return err
		}
		if err := notFailed(r.sup); err != nil {
			return err
		}
		if err := waitNewSession(ctx, r.sup, st.Sessions); err != nil {
			return err
		}
		if err := r.delivered(ctx, pre); err != nil {
			return err
		}
		return r.healthy(ctx, post)
	}
	return fr.asRig(), nil
}

func startCamserver4xx(t *testing.T) (rig, error) {
	r, err := startCamserverWith(t, false)
	if err != nil {
		return nil, err
	}
	fr := &faultRig{rig: r}
	fr.fault = func(ctx context.Context, i int) error {
		pre, post := fmt.Sprintf("pre-%03d", i), fmt.Sprintf("post-%03d", i)
		if err := r.record(pre); err != nil {
			return err
		}
		ss := r.srv.Stats()
		// The session is deleted server-side: the re-authorization inside
		// the session and the next Dial both meet the 4xx.
		r.srv.FailNext("/authorize.json", []int{http.StatusNotFound, http.StatusMethodNotAllowed}[i%2], 2)
		r.srv.DeleteSessions(csDevice)
		r.srv.Maintain()
		if err := agenttest.Poll(ctx, "re-authorization after the refusals", func() bool {
			return notFailed(r.sup) != nil || r.srv.Stats().Authorizations > ss.Authorizations
		}); err != nil {
			return err
		}
		if err := notFailed(r.sup); err != nil {
			return err
		}
		if err := agenttest.Poll(ctx, "the stream reopened", func() bool { return r.srv.Stats().StreamsOpened > ss.StreamsOpened }); err != nil {
			return err
		}
		if err := r.delivered(ctx, pre); err != nil {
			return err
		}
		return r.healthy(ctx, post)
	}
	return fr.asRig(), nil
}

func startRTM4xx(t *testing.T) (rig, error) {
	base, err := startRTM(t)
	if err != nil {
		return nil, err
	}
	r := base.(*rtmRig)
	front, err := frontBehind(t, r.proxy, "http://"+r.addr)
	if err != nil {
		return nil, err
	}
	fr := &faultRig{rig: r}
	fr.refresh = func(ctx context.Context) error {
		if err := r.refreshFake(ctx); err != nil {
			return err
		}
		// A fake on a new port: keep the front in the path.
		if err := front.SetTarget("http://" + r.addr); err != nil {
			return err
		}
		r.proxy.SetTarget(front.Addr())
		return nil
	}
	fr.fault = func(ctx context.Context, i int) error {
		st := r.sup.Status()
		active0 := r.activeCount()
		f := r.server()
		minted := f.Minted()
		// Every token expires and the session ends: the renewal from
		// token_url meets a single 401 or 403 first.
		front.FailNext(rtmtest.TokenPath, []int{http.StatusUnauthorized, http.StatusForbidden}[i%2], 1, "<html>Authorization Required</html>")
		f.ExpireTokens()
		f.DropSockets()
		if err := waitNoticed(ctx, r.sup, st.Reconnects); err != nil {
			return err
		}
		if err := agenttest.Poll(ctx, "a new token after the refused one", func() bool {
			return notFailed(r.sup) != nil || f.Minted() > minted
		}); err != nil {
			return err
		}
		if err := notFailed(r.sup); err != nil {
			return err
		}
		if front.Pending() != 0 {
			return fmt.Errorf("token_url's refusal was never answered")
		}
		return r.healthy(ctx, active0, st.Sessions)
	}
	return fr.asRig(), nil
}

// TestTrustFaultMissingCAFile: the camera server's ca_file is missing when
// the link dials again (an operator replacing the certificate): the link
// keeps the CA read before instead of failing for good, and reads the file
// again once it is back.
func TestTrustFaultMissingCAFile(t *testing.T) {
	runTrustCells(t, "ca_file missing at re-dial", map[string]startFunc{"camserver": func(t *testing.T) (rig, error) {
		r, err := startCamserverWith(t, true)
		if err != nil {
			return nil, err
		}
		pem, err := os.ReadFile(r.caFile)
		if err != nil {
			return nil, err
		}
		fr := &faultRig{rig: r}
		fr.fault = func(ctx context.Context, i int) error {
			st := r.sup.Status()
			pre, post := fmt.Sprintf("pre-%03d", i), fmt.Sprintf("post-%03d", i)
			if err := r.record(pre); err != nil {
				return err
			}
			if err := os.Remove(r.caFile); err != nil {
				return err
			}
			// A broken heartbeat ends the session: the link dials again.
			r.srv.FailNext("/heartBit.json", http.StatusBadGateway, 1)
			err := agenttest.Poll(ctx, "a new session with the CA read before", func() bool {
				s := r.sup.Status()
				return notFailed(r.sup) != nil || (s.Sessions > st.Sessions && s.State == supervisor.Up)
			})
			if err == nil {
				err = notFailed(r.sup)
			}
			if err == nil && !strings.Contains(r.stats.Details()["ca_file"], "read before") {
				err = fmt.Errorf("ca_file detail %q does not say the CA read before is used", r.stats.Details()["ca_file"])
			}
			if werr := os.WriteFile(r.caFile, pem, 0o600); err == nil {
				err = werr
			}
			if err != nil {
				return err
			}
			if err := r.delivered(ctx, pre); err != nil {
				return err
			}
			return r.healthy(ctx, post)
		}
		return fr.asRig(), nil
	}})
}

// TestTrustFaultGetMsgsDatabaseFail: after one message with "params":"abc"
// the camera server answers DATABASE_FAIL to every getMsgs until it
// restarts. The message poll backs off on its own; the session, the stream
// and record delivery go on; after the server's restart commands are
// handled again.
func TestTrustFaultGetMsgsDatabaseFail(t *testing.T) {
	runTrustCells(t, "getMsgs DATABASE_FAIL", map[string]startFunc{"camserver": func(t *testing.T) (rig, error) {
		r, err := startCamserverWith(t, false)
		if err != nil {
			return nil, err
		}
		fr := &faultRig{rig: r}
		fr.fault = func(ctx context.Context, i int) error {
			pre, post := fmt.Sprintf("pre-%03d", i), fmt.Sprintf("post-%03d", i)
			if err := r.record(pre); err != nil {
				return err
			}
			op, done, err := csOperator(ctx, r.srv, "other-board")
			if err != nil {
				return err
			}
			defer done()
			st := r.sup.Status()
			auths := r.srv.Stats().Authorizations
			if err := csPostRaw(ctx, r.srv, op, map[string]any{"msg": "x", "target": csDevice, "params": "abc"}); err != nil {
				return err
			}
			if err := agenttest.Poll(ctx, "the poll to report DATABASE_FAIL", func() bool {
				return strings.Contains(r.stats.Details()["messages"], "DATABASE_FAIL")
			}); err != nil {
				return err
			}
			// Frames and records go on meanwhile, on the same session.
			if err := r.streaming(ctx, r.frames.Load()); err != nil {
				return err
			}
			if err := r.delivered(ctx, pre); err != nil {
				return err
			}
			if s := r.sup.Status(); s.Sessions != st.Sessions || r.srv.Stats().Authorizations != auths {
				return fmt.Errorf("the session ended over a getMsgs failure (sessions %d→%d, authorizations %d→%d)",
					st.Sessions, s.Sessions, auths, r.srv.Stats().Authorizations)
			}
			// The server restarts: messages list again.
			r.proxy.Refuse(true)
			err = r.srv.Restart()
			r.proxy.Refuse(false)
			if err != nil {
				return err
			}
			in := r.stats.MsgsIn.Load()
			op2, done2, err := csOperator(ctx, r.srv, "viewer-app") // the restart closed op's connection
			if err != nil {
				return err
			}
			defer done2()
			if err := op2.AddMsgs(ctx, camserver.Message{Msg: fmt.Sprintf("note-%d", i), Target: csDevice}); err != nil {
				return fmt.Errorf("operator message: %w", err)
			}
			if err := agenttest.Poll(ctx, "a message handled after the restart", func() bool {
				return r.stats.MsgsIn.Load() > in && r.stats.Details()["messages"] == ""
			}); err != nil {
				return err
			}
			return r.healthy(ctx, post)
		}
		return fr.asRig(), nil
	}})
}

// csOperator is another device of the account, talking h2c to the fake
// directly (not through the rig's proxy).
func csOperator(ctx context.Context, srv *camservertest.Server, name string) (*camserver.Client, func(), error) {
	u, err := url.Parse(srv.URL())
	if err != nil {
		return nil, nil, err
	}
	rt := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, n, a)
	}}
	c := camserver.NewClient(u, rt, camserver.ClientOptions{User: camservertest.DemoUser, Password: camservertest.DemoPassword, Device: name})
	if err := c.Authorize(ctx); err != nil {
		rt.CloseIdleConnections()
		return nil, nil, err
	}
	return c, rt.CloseIdleConnections, nil
}

// csPostRaw sends an addMsgs body the client would refuse (non-object
// params) with op's session.
func csPostRaw(ctx context.Context, srv *camservertest.Server, op *camserver.Client, msg map[string]any) error {
	shash, _ := op.Shash()
	msg["shash"] = shash
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	rt := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, n, a)
	}}
	defer rt.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/addMsgs.json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
