package frameio_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/faultproxy"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// frontEnv is newEnv with the API behind a faultproxy.Front that can answer
// single requests itself (the socket still goes to the fake).
func frontEnv(t *testing.T) (*frameiotest.Server, *env, *faultproxy.Front) {
	t.Helper()
	fake := newFake(t, frameiotest.Options{})
	front, err := faultproxy.NewFront(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(front.Close)
	e := newEnv(t, fake, true)
	e.cfg.APIURL = front.URL()
	return fake, e, front
}

// notFailed fails the test at once if the link failed for good.
func notFailed(t *testing.T, sup *supervisor.Supervisor) {
	t.Helper()
	if st := sup.Status(); st.State == supervisor.Failed {
		t.Fatalf("link failed for good: %s", st.LastError)
	}
}

// TestTrustDevicesMe400IsRetried: a 400 on GET /v2/devices/me at dial made
// the link failed for good (it was classified like the refusal of one
// asset). A proxy or a deploy answers that for minutes: retried now.
func TestTrustDevicesMe400IsRetried(t *testing.T) {
	fake, e, front := frontEnv(t)
	front.FailNext("/v2/devices/me", http.StatusBadRequest, 2, "<html><body>400 Bad Request</body></html>")
	sup := agenttest.RunLink(t, "frameio", e.link(t, fastOptions()), e.deps)
	agenttest.Eventually(t, "a join after the refusals", func() bool {
		notFailed(t, sup)
		return fake.Stats().Joins >= 1
	})
	if st := sup.Status(); st.Reconnects < 2 {
		t.Errorf("status %+v: want 2 retries before the join", st)
	}
}

// TestTrustRefreshSingle4xxIsRetried: any non-429 4xx on the refresh made
// the link failed for good ("re-pair needed"). Only Frame.io's own
// invalid_grant / invalid_client mean that (TestRefreshRefusedFailsLink);
// a 404, a 408, a 400 or 401 without that code are retried, and the tokens
// are kept.
func TestTrustRefreshSingle4xxIsRetried(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
	}{
		{http.StatusNotFound, "404 page not found"},
		{http.StatusRequestTimeout, ""},
		{http.StatusBadRequest, "<html>bad gateway config</html>"},
		{http.StatusUnauthorized, `{"message":"Unauthorized"}`},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			fake, e, front := frontEnv(t)
			sup := agenttest.RunLink(t, "frameio", e.link(t, fastOptions()), e.deps)
			waitSessions(t, fake, sup, 1)
			front.FailNext("/v2/auth/token", tc.status, 2, tc.body)
			fake.ExpireAccessTokens()
			fake.DropSockets()
			agenttest.Eventually(t, "a second join after the refusals", func() bool {
				notFailed(t, sup)
				return fake.Stats().Joins >= 2
			})
			if front.Failed() != 2 || fake.Stats().Refreshes != 1 {
				t.Errorf("front answered %d refreshes, the fake %d; want 2 and 1", front.Failed(), fake.Stats().Refreshes)
			}
			if d := e.stats.Details()["pairing"]; d != "paired" {
				t.Errorf("pairing detail = %q, want paired", d)
			}
			if _, err := frameio.LoadTokens(frameio.TokenPath(&e.cfg, e.deps.StateDir)); err != nil {
				t.Errorf("tokens: %v", err)
			}
		})
	}
}

// TestTrustAssetCreateBare4xxKeepsAsset: a 400/413/415/422 on asset create
// dropped the captured asset whatever said it. A bare status or a proxy's
// HTML page says nothing about the asset: it is retried and delivered now;
// Frame.io's own refusal (a JSON reason) still drops it.
func TestTrustAssetCreateBare4xxKeepsAsset(t *testing.T) {
	fake, e, front := frontEnv(t)
	front.FailNext("/v2/devices/assets", http.StatusBadRequest, 1, "<html><body>400 Bad Request</body></html>")
	putAsset(t, e.spool, "kept.jpg", "image/jpeg", time.Now(), randomBytes(100))
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
	if st := e.spool.Stats(); st.Delivered != 1 || st.Rejected != 0 {
		t.Errorf("spool %+v: want the asset delivered after the 400 page", st)
	}
	front.FailNext("/v2/devices/assets", http.StatusUnprocessableEntity, 1, `{"code":422,"message":"Invalid filetype","errors":[]}`)
	putAsset(t, e.spool, "refused.jpg", "image/jpeg", time.Now(), randomBytes(100))
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
	if st := e.spool.Stats(); st.Rejected != 1 {
		t.Errorf("spool %+v: want Frame.io's 422 with a reason to drop the asset", st)
	}
	if a := fake.Assets(); len(a) != 1 || a[0].Name != "kept.jpg" {
		t.Errorf("assets = %+v", a)
	}
}
