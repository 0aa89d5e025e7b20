package frameio_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// redirectStatuses are the redirects every trust test tries.
var redirectStatuses = []int{301, 302, 303, 307, 308}

// secrets are the credentials the link holds: none may reach another host.
func (e *env) secrets(t *testing.T) []string {
	t.Helper()
	tok, err := frameio.LoadTokens(frameio.TokenPath(&e.cfg, e.deps.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	return []string{e.cfg.ClientSecret, tok.AccessToken, tok.RefreshToken}
}

func checkSinkClean(t *testing.T, sink *httpxtest.Sink, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if sink.Saw(s) {
			t.Errorf("a credential reached the other host: %+v", sink.Requests())
			return
		}
	}
	if n := len(sink.Requests()); n != 0 {
		t.Errorf("%d requests reached the other host", n)
	}
}

// TestTrustFrameioDialRedirects: the token refresh (client_secret and the
// refresh token in a POST body) and GET /v2/devices/me (Bearer) are
// redirected to another host. On main a 307/308 re-POSTed the secrets there
// and the GET followed any redirect with the Bearer token dropped only by
// Go's host check. Now Dial fails with a refused redirect (retried, not
// permanent), nothing reaches the other host, and Dial works once the
// redirect is gone.
func TestTrustFrameioDialRedirects(t *testing.T) {
	for _, ep := range []string{"/v2/auth/token", "/v2/devices/me"} {
		for _, status := range redirectStatuses {
			t.Run(fmt.Sprintf("%s %d", ep, status), func(t *testing.T) {
				sink := httpxtest.NewSink(false)
				defer sink.Close()
				fake := newFake(t, frameiotest.Options{})
				e := newEnv(t, fake, true)
				secrets := e.secrets(t)
				if ep == "/v2/auth/token" { // make the next Dial refresh first
					path := frameio.TokenPath(&e.cfg, e.deps.StateDir)
					tok, _ := frameio.LoadTokens(path)
					tok.IssuedAt, tok.ExpiresAt = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
					if err := frameio.SaveTokens(path, tok); err != nil {
						t.Fatal(err)
					}
				}
				l := e.link(t, fastOptions())
				fake.Redirect(ep, status, sink.URL())
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := l.Dial(ctx)
				if err == nil {
					s.Close()
					t.Fatal("Dial succeeded through a redirect to another host")
				}
				if !strings.Contains(err.Error(), "redirect refused") || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", status)) {
					t.Errorf("err = %v, want a refused redirect naming HTTP %d", err, status)
				}
				if retry.IsPermanent(err) {
					t.Errorf("a refused redirect failed the link for good: %v", err)
				}
				checkSinkClean(t, sink, secrets)
				fake.Redirect("", 0, "")
				s, err = l.Dial(ctx)
				if err != nil {
					t.Fatalf("Dial after the redirect ended: %v", err)
				}
				s.Close()
			})
		}
	}
}

// TestTrustFrameioUploadRedirects: the asset create (POST, Bearer) and a
// part PUT (the media) are redirected to another host. The asset stays
// spooled, nothing reaches the other host, and the asset is delivered once
// the redirect is gone.
func TestTrustFrameioUploadRedirects(t *testing.T) {
	for _, ep := range []string{"/v2/devices/assets", "/s3/"} {
		for _, status := range redirectStatuses {
			t.Run(fmt.Sprintf("%s %d", ep, status), func(t *testing.T) {
				sink := httpxtest.NewSink(false)
				defer sink.Close()
				fake := newFake(t, frameiotest.Options{})
				e := newEnv(t, fake, true)
				secrets := e.secrets(t)
				fake.Redirect(ep, status, sink.URL())
				data := randomBytes(5000)
				putAsset(t, e.spool, "clip.mov", "video/quicktime", time.Now(), data)
				l := e.link(t, fastOptions())
				runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
				agenttest.Eventually(t, "redirected twice", func() bool { return fake.Redirected() >= 2 })
				if st := e.spool.Stats(); st.Items != 1 || st.Rejected != 0 {
					t.Fatalf("spool %+v, want the asset kept", st)
				}
				agenttest.Eventually(t, "the refusal logged", func() bool { return strings.Contains(e.logs.String(), "redirect refused") })
				checkSinkClean(t, sink, secrets)
				fake.Redirect("", 0, "")
				agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
				if a := fake.Assets(); len(a) == 0 || !a[len(a)-1].Complete || a[len(a)-1].SHA256 != sum(data) {
					t.Errorf("assets %+v", a)
				}
				checkSinkClean(t, sink, secrets)
			})
		}
	}
}

// tlsAPI is a stand-in for Frame.io over https (httptest's certificate,
// trusted through ca_file) whose handler the test writes.
func tlsAPI(t *testing.T, h http.HandlerFunc) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

// tlsEnv is an env whose link talks to api over https; the tokens are
// saved directly (the stand-in has no auth endpoints).
func tlsEnv(t *testing.T, api *httptest.Server, ca string, spoolClock clock.Clock) *env {
	t.Helper()
	logs := &logxtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps := agenttest.Deps(t, "fio", nil, log)
	deps.Version = "1.2.3"
	deps.Spool = agenttest.Spool(t, spool.Options{Logger: log, Clock: spoolClock})
	cfg := frameio.Config{APIURL: api.URL, SocketURL: "wss://127.0.0.1:1/devices/websocket", ClientID: "c", ClientSecret: "client-secret-0123456789", CAFile: ca}
	cfg.SetDefaults()
	now := time.Now().UTC()
	if err := frameio.SaveTokens(frameio.TokenPath(&cfg, deps.StateDir), &frameio.Tokens{AccessToken: "at-0123456789abcdef0123",
		RefreshToken: "rt-0123456789abcdef0123", IssuedAt: now, ExpiresAt: now.Add(8 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return &env{cfg: cfg, deps: deps, stats: deps.Stats, spool: deps.Spool, dir: t.TempDir(), logs: logs}
}

// TestTrustFrameioHTTPSToHTTPSameHost: the https API redirects GET
// /v2/devices/me to http on the same host name. Go keeps Authorization on
// such a hop (main sent the access token in clear text); now it is refused.
func TestTrustFrameioHTTPSToHTTPSameHost(t *testing.T) {
	sink := httpxtest.NewSink(false) // http://127.0.0.1:<port>
	defer sink.Close()
	for _, status := range redirectStatuses {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			api, ca := tlsAPI(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/health" {
					w.WriteHeader(200)
					return
				}
				http.Redirect(w, r, sink.URL()+r.URL.Path, status)
			})
			e := tlsEnv(t, api, ca, nil)
			l := e.link(t, fastOptions())
			_, err := l.Dial(context.Background())
			if err == nil || !strings.Contains(err.Error(), "weaker scheme") {
				t.Fatalf("Dial err = %v, want a redirect refused for its weaker scheme", err)
			}
			checkSinkClean(t, sink, []string{"at-0123456789abcdef0123", "rt-0123456789abcdef0123", "client-secret-0123456789"})
		})
	}
}

// TestTrustFrameioUploadURLsChecked: upload_urls from the create reply must
// be https (api_url is https here), one per part asked for. On main an
// http URL got the media in clear text and extra URLs were taken as extra
// parts. The asset stays spooled and nothing reaches the other host.
func TestTrustFrameioUploadURLsChecked(t *testing.T) {
	sink := httpxtest.NewSink(false)
	defer sink.Close()
	tlsSink := httpxtest.NewSink(true)
	defer tlsSink.Close()
	cases := []struct {
		name string
		urls func(api string) []string
		want string
	}{
		{"http URL from an https API", func(string) []string { return []string{sink.URL() + "/s3/a/1?X-Amz-Signature=sig"} }, "clear-text http"},
		{"more URLs than parts", func(api string) []string {
			urls := make([]string, 1000)
			for i := range urls {
				urls[i] = tlsSink.URL() + "/s3/a/" + fmt.Sprint(i+1) + "?X-Amz-Signature=" + strings.Repeat("s", 1000)
			}
			return urls
		}, "1000 upload_urls for the 1 parts asked"},
		{"no URL", func(string) []string { return nil }, "0 upload_urls"},
		{"relative URL", func(string) []string { return []string{"/s3/a/1"} }, "absolute URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var api *httptest.Server
			api, ca := tlsAPI(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v2/devices/assets" {
					w.WriteHeader(200)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"id": "asset-1", "upload_urls": tc.urls(api.URL)})
			})
			e := tlsEnv(t, api, ca, nil)
			putAsset(t, e.spool, "tiny.jpg", "image/jpeg", time.Now(), []byte("0123456789"))
			l := e.link(t, fastOptions())
			runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
			agenttest.Eventually(t, "a refused create", func() bool { return strings.Contains(e.logs.String(), tc.want) })
			if st := e.spool.Stats(); st.Items != 1 || st.Rejected != 0 {
				t.Fatalf("spool %+v, want the asset kept", st)
			}
			if n := len(sink.Requests()) + len(tlsSink.Requests()); n != 0 {
				t.Errorf("%d part PUTs went to the upload URLs", n)
			}
		})
	}
}

// TestTrustFrameioPlainUploadURLOtherHost: with a plain http api_url (tests,
// a LAN fake) http upload URLs are taken only on api_url's host name.
func TestTrustFrameioPlainUploadURLOtherHost(t *testing.T) {
	sink := httpxtest.NewSink(false)
	defer sink.Close()
	u, _ := url.Parse(sink.URL())
	other := "http://localhost:" + u.Port() // 127.0.0.1 is api_url's host
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	fake.SetUploadURLs(func(urls []string) []string {
		for i := range urls {
			urls[i] = other + "/s3/x/1?X-Amz-Signature=sig"
		}
		return urls
	})
	putAsset(t, e.spool, "tiny.jpg", "image/jpeg", time.Now(), []byte("0123456789"))
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "a refused create", func() bool { return strings.Contains(e.logs.String(), "clear-text http to another host") })
	if n := len(sink.Requests()); n != 0 || e.spool.Stats().Items != 1 {
		t.Fatalf("%d PUTs reached the other host; spool %+v", n, e.spool.Stats())
	}
	fake.SetUploadURLs(nil)
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
}

// TestTrustFrameioPartRecordsAreSmall: what a finished part writes is its
// index appended to the item's progress log, a few bytes, whatever the
// URLs. On main each part once rewrote a record holding every URL, so 1000
// URLs of 1 KB made each part rewrite ~1 MB (fsynced); later each part
// rewrote the item's metadata through a temp file, a rename and two fsyncs.
// The URLs are written once, with the create, and go with the item.
func TestTrustFrameioPartRecordsAreSmall(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	pad := "&pad=" + strings.Repeat("p", 1000)
	fake.SetUploadURLs(func(urls []string) []string {
		for i := range urls {
			urls[i] += pad
		}
		return urls
	})
	opts := fastOptions()
	opts.MinPartSize, opts.PartSize = 64, 64
	const parts = 200
	data := randomBytes(parts * 64)
	it := putAsset(t, e.spool, "many-parts.bin", "application/octet-stream", time.Now(), data)
	fake.BlockPart(parts / 2)
	l := e.link(t, opts)
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	select {
	case <-fake.PartStarted():
	case <-time.After(20 * time.Second):
		t.Fatal("the upload never reached the blocked part")
	}
	agenttest.Eventually(t, "some parts recorded", func() bool {
		cur, _ := e.spool.Get(it.ID)
		return len(cur.Updates) > 0
	})
	cur, _ := e.spool.Get(it.ID)
	for _, u := range cur.Updates {
		if len(u) > 3 {
			t.Fatalf("a part record of %d bytes (%.100s…), want its index", len(u), u)
		}
	}
	if n := strings.Count(string(cur.Progress), pad[1:]); n != parts { // JSON escapes the &
		t.Errorf("the create record holds %d of the %d URLs", n, parts)
	}
	log := filepath.Join(e.spool.Dir(), it.ID+".progress")
	if fi, err := os.Stat(log); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("progress log %v (%v): want 0600, it holds the URLs", fi, err)
	}
	fake.BlockPart(0)
	if err := fake.Restart(); err != nil { // releases the blocked PUT
		t.Fatal(err)
	}
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
	if a := fake.Assets(); len(a) != 1 || !a[0].Complete || a[0].SHA256 != sum(data) || fake.Stats().Creates != 1 {
		t.Errorf("assets %+v creates %d", a, fake.Stats().Creates)
	}
	// The spool forgets the item before it unlinks its files (the count
	// drops first), so wait for the directory too.
	agenttest.Eventually(t, "spool files removed", func() bool {
		left, _ := os.ReadDir(e.spool.Dir())
		return len(left) == 0
	})
}

// TestTrustFrameioHugeRetryAfter: the asset create answers 429 with a
// Retry-After of ten years (seconds, then an HTTP date). On main the spool
// slept 87600 h; now it waits retry.MaxRetryAfter at most and logs the cap.
func TestTrustFrameioHugeRetryAfter(t *testing.T) {
	for _, v := range []string{"315360000", time.Now().AddDate(10, 0, 0).UTC().Format(http.TimeFormat)} {
		t.Run(v, func(t *testing.T) {
			fake := newFake(t, frameiotest.Options{})
			e := newEnv(t, fake, true)
			fc := clock.NewFake(time.Now())
			fc.OnSleep = func(time.Duration) { time.Sleep(5 * time.Millisecond) }
			sp := agenttest.Spool(t, spool.Options{Clock: fc})
			e.deps.Spool, e.spool = sp, sp
			fake.FailCreates(frameiotest.Fault{Status: 429, Message: "Too Many Requests", Header: http.Header{"Retry-After": {v}}})
			putAsset(t, sp, "clip.mov", "video/quicktime", time.Now(), randomBytes(100))
			l := e.link(t, fastOptions())
			runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
			agenttest.Eventually(t, "spool drained", func() bool { return sp.Stats().Items == 0 })
			longest := time.Duration(0)
			for _, d := range fc.Sleeps() {
				longest = max(longest, d)
			}
			if longest != retry.MaxRetryAfter {
				t.Errorf("longest spool wait %v, want the cap %v", longest, retry.MaxRetryAfter)
			}
			if !strings.Contains(e.logs.String(), "waiting the cap instead") {
				t.Errorf("the cap was not logged")
			}
		})
	}
}

// TestTrustPairServerWaitsCapped: a device-code answer with an interval and
// a lifetime of ten years made `edge-agent pair` sleep ten years before its
// first poll. Both are bounded now (a minute between polls, 30 min a code).
func TestTrustPairServerWaitsCapped(t *testing.T) {
	fake := newFake(t, frameiotest.Options{Interval: 315360000, CodeTTL: 315360000})
	fake.SetPairScript("authorization_pending", "slow_down")
	cfg := frameio.Config{APIURL: fake.URL(), SocketURL: fake.SocketURL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
	clk := clock.NewFake(time.Now())
	if _, err := frameio.Pair(context.Background(), cfg, frameio.PairOptions{TokenPath: filepath.Join(t.TempDir(), "tokens.json"),
		DeviceName: "pi", Version: "1.0.0", Clock: clk}); err != nil {
		t.Fatal(err)
	}
	sleeps := clk.Sleeps()
	if len(sleeps) != 3 {
		t.Fatalf("sleeps %v, want three polls", sleeps)
	}
	for _, d := range sleeps {
		if d != time.Minute {
			t.Errorf("poll waits %v, want each capped at 1m", sleeps)
			break
		}
	}
}
