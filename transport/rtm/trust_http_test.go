package rtm_test

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
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// restConfig uses the fake's REST API (session create) and, with tokenURL,
// its token endpoint instead of a static token.
func restConfig(e *env, tokenURL bool) rtm.Config {
	cfg := e.cfg
	cfg.URL, cfg.APIURL = "", e.fake.APIURL()
	if tokenURL {
		cfg.Token, cfg.TokenURL, cfg.TokenURLKey = "", e.fake.TokenURL(), e.fake.DeviceKey()
	}
	return cfg
}

func dialOnce(t *testing.T, e *env, cfg rtm.Config) error {
	t.Helper()
	link, err := rtm.New(cfg, e.deps, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := link.Dial(ctx)
	if err == nil {
		s.Close()
	}
	return err
}

// TestTrustRTMRedirects: token_url (the device key as Bearer) and the
// session create (the token as Bearer) are redirected to another host. On
// main a 307/308 re-POSTed them there with their Authorization (Go drops it
// only on a change of host name, not of port or scheme). Now the set-up
// fails with a refused redirect (retried, not permanent) and nothing
// reaches the other host; once the redirect is gone the link comes up.
func TestTrustRTMRedirects(t *testing.T) {
	for _, ep := range []string{rtmtest.TokenPath, "/api/v2/session"} {
		for _, status := range []int{301, 302, 303, 307, 308} {
			t.Run(fmt.Sprintf("%s %d", ep, status), func(t *testing.T) {
				e := newEnv(t, 100*time.Millisecond)
				sink := httpxtest.NewSink(false)
				defer sink.Close()
				cfg := restConfig(e, ep == rtmtest.TokenPath)
				e.fake.Redirect(ep, status, sink.URL())
				err := dialOnce(t, e, cfg)
				if err == nil || !strings.Contains(err.Error(), "redirect refused") || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", status)) {
					t.Fatalf("Dial err = %v, want a refused redirect naming HTTP %d", err, status)
				}
				if retry.IsPermanent(err) {
					t.Errorf("a refused redirect failed the link for good: %v", err)
				}
				for _, secret := range []string{e.fake.DeviceKey(), e.fake.Token()} {
					if sink.Saw(secret) {
						t.Errorf("a credential reached the other host")
					}
				}
				if n := len(sink.Requests()); n != 0 {
					t.Errorf("%d requests reached the other host", n)
				}
				if ep == "/api/v2/session" && status == 307 { // one full recovery is enough
					e.fake.Redirect("", 0, "")
					sup := runLink(t, e, cfg)
					waitActive(t, e, sup, 0)
				}
			})
		}
	}
}

// TestTrustRTMWSEndpointClearTextOtherHost: with a plain http api_url (a
// LAN set-up, the tests) a ws:// ws_endpoint is taken only on api_url's
// host name. On main a ws:// endpoint on another host got the Bearer token
// in clear text at every retry.
func TestTrustRTMWSEndpointClearTextOtherHost(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	sink := httpxtest.NewSink(false)
	defer sink.Close()
	u, _ := url.Parse(sink.URL())
	e.fake.SetWSEndpoint("ws://localhost:" + u.Port() + "/api/v2/io") // api_url is 127.0.0.1
	cfg := restConfig(e, false)
	err := dialOnce(t, e, cfg)
	if err == nil || !strings.Contains(err.Error(), "ws_endpoint") || !strings.Contains(err.Error(), "another host") {
		t.Fatalf("Dial err = %v, want ws_endpoint refused", err)
	}
	if strings.Contains(err.Error(), "/api/v2/io") {
		t.Errorf("the error shows the endpoint's path: %v", err)
	}
	if n := len(sink.Requests()); n != 0 || sink.Saw(e.fake.Token()) {
		t.Fatalf("%d requests reached the other host", n)
	}
	e.fake.SetWSEndpoint("") // the fake's own ws:// endpoint: same host as api_url
	sup := runLink(t, e, cfg)
	waitActive(t, e, sup, 0)
}

// TestTrustRTMWSEndpointNeedsTLS: with an https api_url, ws_endpoint must be
// wss://. A ws:// endpoint, even on api_url's own host name, is refused
// before the token is sent; a wss:// endpoint on another host is allowed
// (the service may use its own signalling host; the token then travels
// only over verified TLS).
func TestTrustRTMWSEndpointNeedsTLS(t *testing.T) {
	sink := httpxtest.NewSink(false) // http://127.0.0.1:<port>
	defer sink.Close()
	tlsSink := httpxtest.NewSink(true)
	defer tlsSink.Close()
	su, _ := url.Parse(sink.URL())
	tu, _ := url.Parse(tlsSink.URL())
	cases := []struct {
		name, endpoint string
		refused        bool
	}{
		{"ws same host name", "ws://127.0.0.1:" + su.Port() + "/api/v2/io", true},
		{"ws other host", "ws://localhost:" + su.Port() + "/api/v2/io", true},
		{"wss other host allowed", "wss://localhost:" + tu.Port() + "/api/v2/io", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 100*time.Millisecond)
			api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_ = json.NewEncoder(w).Encode(map[string]any{"session_id": "s1", "ws_endpoint": tc.endpoint})
			}))
			defer api.Close()
			ca := filepath.Join(t.TempDir(), "ca.pem")
			pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
			pemBytes = append(pemBytes, tlsSink.CertPEM()...) // the wss sink is trusted too
			if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := e.cfg
			cfg.URL, cfg.APIURL, cfg.CAFile = "", api.URL, ca
			err := dialOnce(t, e, cfg)
			if err == nil {
				t.Fatal("Dial succeeded against a stand-in")
			}
			if got := strings.Contains(err.Error(), "ws_endpoint"); got != tc.refused {
				t.Fatalf("Dial err = %v; ws_endpoint refused: %v, want %v", err, got, tc.refused)
			}
			if tc.refused {
				if n := len(sink.Requests()); n != 0 || sink.Saw(e.cfg.Token) {
					t.Errorf("%d requests reached the clear-text endpoint", n)
				}
				return
			}
			// Allowed: the upgrade went to the wss endpoint (which is no
			// RTM service) with the token, over verified TLS.
			if !tlsSink.Saw(e.cfg.Token) {
				t.Errorf("the wss endpoint was not dialled: %v", err)
			}
		})
	}
}

// TestTrustRTMHugeRetryAfter: the session create answers 503 with a
// Retry-After of ten years (seconds, then an HTTP date). On main the
// supervisor slept 87600 h; now it waits retry.MaxRetryAfter at most and
// logs the cap, and the link comes up once the service does.
func TestTrustRTMHugeRetryAfter(t *testing.T) {
	for _, v := range []string{"315360000", time.Now().AddDate(10, 0, 0).UTC().Format(http.TimeFormat)} {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t, 100*time.Millisecond)
			logs := &logxtest.Buffer{}
			e.deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			e.fake.FailSessions(503, v)
			link, err := rtm.New(restConfig(e, false), e.deps, fastOpts)
			if err != nil {
				t.Fatal(err)
			}
			fc := clock.NewFake(time.Now())
			fc.OnSleep = func(time.Duration) { time.Sleep(5 * time.Millisecond) }
			sup := agenttest.RunLinkWith(t, supervisor.Options{Name: "recorder", Kind: "rtm", Link: link, Logger: e.deps.Logger, Clock: fc,
				Policy: agenttest.FastBackoff})
			agenttest.Eventually(t, "two refused set-ups", func() bool { return len(fc.Sleeps()) >= 2 })
			e.fake.FailSessions(0, "")
			waitActive(t, e, sup, 0)
			for _, d := range fc.Sleeps() {
				if d > retry.MaxRetryAfter {
					t.Errorf("the supervisor waited %v", d)
				}
			}
			if fc.Sleeps()[0] != retry.MaxRetryAfter {
				t.Errorf("first wait %v, want the cap %v", fc.Sleeps()[0], retry.MaxRetryAfter)
			}
			if n := strings.Count(logs.String(), "waiting the cap instead"); n < 1 {
				t.Errorf("the cap was not logged")
			}
		})
	}
}

// TestTrustRTMHTTPSToHTTPSameHost: an https api_url redirects the session
// create to http on the same host name. Go keeps Authorization on such a
// hop (main re-POSTed the token there in clear text on 307/308); now the
// redirect is refused and nothing reaches the plain endpoint.
func TestTrustRTMHTTPSToHTTPSameHost(t *testing.T) {
	sink := httpxtest.NewSink(false) // http://127.0.0.1:<port>
	defer sink.Close()
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv(t, 100*time.Millisecond)
			api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, sink.URL()+r.URL.Path, status)
			}))
			defer api.Close()
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := e.cfg
			cfg.URL, cfg.APIURL, cfg.CAFile = "", api.URL, ca
			err := dialOnce(t, e, cfg)
			if err == nil || !strings.Contains(err.Error(), "redirect refused") {
				t.Fatalf("Dial err = %v, want a refused redirect", err)
			}
			if n := len(sink.Requests()); n != 0 || sink.Saw(e.cfg.Token) {
				t.Errorf("%d requests reached the plain endpoint", n)
			}
		})
	}
}
