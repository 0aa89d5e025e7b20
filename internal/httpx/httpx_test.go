package httpx_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/httpx"
	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/internal/selfsigned"
)

const secret = "s3cr3t-key-0123456789"

// origin is a configured server that redirects everything to where the test
// says, and answers 200 "origin" otherwise.
func origin(t *testing.T, useTLS bool, d *httpxtest.Redirect) *httptest.Server {
	t.Helper()
	h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, "origin")
	}))
	var s *httptest.Server
	if useTLS {
		s = httptest.NewTLSServer(h)
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

// TestTrustRedirectPolicy sends a secret-carrying GET and POST through a
// client from NewClient to a server that redirects them, and checks which
// redirects are followed, that a refused one is a *RedirectError naming the
// status and target origin only, and that the secret never reaches the
// other server.
func TestTrustRedirectPolicy(t *testing.T) {
	sink := httpxtest.NewSink(false)
	defer sink.Close()
	tlsSink := httpxtest.NewSink(true)
	defer tlsSink.Close()

	tests := []struct {
		name     string
		tls      bool   // origin over https
		method   string // GET carries the secret in a header, POST in header and body
		status   int
		target   string // "sink", "tls-sink" (another host), "self" (same origin)
		followed bool
		reason   string
	}{
		{"GET 301 to another host", false, "GET", 301, "sink", false, "another host"},
		{"GET 302 to another host", false, "GET", 302, "sink", false, "another host"},
		{"GET 303 to another host", false, "GET", 303, "sink", false, "another host"},
		{"GET 307 to another host", false, "GET", 307, "sink", false, "another host"},
		{"GET 308 to another host", false, "GET", 308, "sink", false, "another host"},
		{"POST 301 to another host", false, "POST", 301, "sink", false, "never redirected"},
		{"POST 302 to another host", false, "POST", 302, "sink", false, "never redirected"},
		{"POST 303 to another host", false, "POST", 303, "sink", false, "never redirected"},
		{"POST 307 to another host", false, "POST", 307, "sink", false, "never redirected"},
		{"POST 308 to another host", false, "POST", 308, "sink", false, "never redirected"},
		{"GET https to http", true, "GET", 302, "sink", false, "weaker scheme"},
		{"GET 308 https to http", true, "GET", 308, "sink", false, "weaker scheme"},
		{"GET https to another https host", true, "GET", 302, "tls-sink", false, "another host"},
		{"POST 307 same origin", false, "POST", 307, "self", false, "never redirected"},
		{"POST 303 same origin", false, "POST", 303, "self", false, "never redirected"},
		{"GET 302 same origin", false, "GET", 302, "self", true, ""},
		{"GET 308 same origin https", true, "GET", 308, "self", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d httpxtest.Redirect
			srv := origin(t, tt.tls, &d)
			target := map[string]string{"sink": sink.URL(), "tls-sink": tlsSink.URL(), "self": srv.URL}[tt.target]
			// Redirect only the first hop (/in → target/out), so a followed
			// same-origin redirect ends at the origin's 200.
			d.Set(httpxtest.Rule{Prefix: "/in", Status: tt.status, Target: target, Path: "/out?sig=" + secret})
			tr := httpx.NewTransport(srv.Client().Transport.(*http.Transport).TLSClientConfig)
			if tt.target == "tls-sink" {
				// trust both test certificates, as a ca_file holding both would
				tc := tr.TLSClientConfig
				tc.RootCAs.AppendCertsFromPEM(tlsSink.CertPEM())
			}
			defer tr.CloseIdleConnections()
			c := httpx.NewClient(tr)
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(`{"client_secret":"` + secret + `"}`)
			}
			req, err := http.NewRequestWithContext(context.Background(), tt.method, srv.URL+"/in/x?sig="+secret, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("x-api-key", secret)
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := c.Do(req)
			if tt.followed {
				if err != nil {
					t.Fatalf("same-origin GET redirect not followed: %v", err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "origin" {
					t.Errorf("body %q, want the origin's", b)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("redirect followed: HTTP %d", resp.StatusCode)
			}
			var re *httpx.RedirectError
			if !errors.As(err, &re) || !httpx.IsRedirect(err) {
				t.Fatalf("err = %v (%T), want a *RedirectError", err, err)
			}
			u, _ := url.Parse(target)
			if re.Status != tt.status || re.Target != httpx.Origin(u) || !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("RedirectError = %+v, want status %d, target %s, reason ~%q", re, tt.status, httpx.Origin(u), tt.reason)
			}
			msg := re.Error()
			if strings.Contains(msg, secret) || strings.Contains(msg, "/out") || strings.Contains(msg, "/x") {
				t.Errorf("the error shows more than the target origin: %q", msg)
			}
			if !strings.Contains(msg, "HTTP "+strconv.Itoa(tt.status)) || !strings.Contains(msg, u.Host) {
				t.Errorf("the error does not name the status and target host: %q", msg)
			}
			for _, s := range []*httpxtest.Sink{sink, tlsSink} {
				if s.Saw(secret) || len(s.Requests()) > 0 {
					t.Errorf("a refused redirect reached the other server: %+v", s.Requests())
				}
			}
		})
	}
}

// TestTrustRedirectHopLimit: a same-origin GET loop ends with a
// *RedirectError after MaxRedirects requests (MaxRedirects redirect answers
// seen, the last one refused).
func TestTrustRedirectHopLimit(t *testing.T) {
	var d httpxtest.Redirect
	srv := origin(t, false, &d)
	d.Set(httpxtest.Rule{Prefix: "/", Status: 302, Target: srv.URL})
	c := httpx.NewClient(httpx.NewTransport(nil))
	resp, err := c.Get(srv.URL + "/loop")
	if err == nil {
		resp.Body.Close()
		t.Fatal("a redirect loop was followed to the end")
	}
	if !httpx.IsRedirect(err) || !strings.Contains(err.Error(), "stopped after") {
		t.Errorf("err = %v", err)
	}
	if n := d.Count(); n != httpx.MaxRedirects {
		t.Errorf("%d redirect answers, want %d", n, httpx.MaxRedirects)
	}
}

// TestTrustRedirectWithoutLocation: a 3xx without Location is a refused
// redirect too, never a response a caller could take for a verdict.
func TestTrustRedirectWithoutLocation(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(307) }))
	defer srv.Close()
	c := httpx.NewClient(httpx.NewTransport(nil))
	resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("sample"))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got HTTP %d, want a refused redirect", resp.StatusCode)
	}
	if !httpx.IsRedirect(err) {
		t.Errorf("err = %v, want a *RedirectError", err)
	}
}

// TestTLSConfigAddsToSystemRoots: ca_file adds its certificate to the
// system roots (the one rule of every link), an unreadable or empty file
// is an error, and insecure_skip_verify is passed through.
func TestTLSConfigAddsToSystemRoots(t *testing.T) {
	_, pemBytes, err := selfsigned.Localhost("httpx")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	tc, err := httpx.TLSConfig(httpx.TLS{CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || tc.InsecureSkipVerify || tc.MinVersion == 0 {
		t.Fatalf("tls config %+v", tc)
	}
	// On Linux the system pool lists its roots: ca_file must add one.
	if sys, err := x509.SystemCertPool(); err == nil {
		n := len(sys.Subjects())                           //nolint:staticcheck // Linux pools list their roots
		if got := len(tc.RootCAs.Subjects()); got != n+1 { //nolint:staticcheck // as above
			t.Errorf("pool holds %d certificates, want the %d system roots + ca_file", got, n)
		}
	}
	if _, err := httpx.TLSConfig(httpx.TLS{CAFile: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Error("a missing ca_file was accepted")
	}
	empty := filepath.Join(dir, "empty.pem")
	_ = os.WriteFile(empty, []byte("not a certificate\n"), 0o600)
	if _, err := httpx.TLSConfig(httpx.TLS{CAFile: empty}); err == nil {
		t.Error("a ca_file without PEM was accepted")
	}
	tc, err = httpx.TLSConfig(httpx.TLS{InsecureSkipVerify: true})
	if err != nil || !tc.InsecureSkipVerify || tc.RootCAs != nil {
		t.Errorf("insecure: %+v, %v", tc, err)
	}
}

// TestTrustCheckServerURL: server-supplied URLs must use TLS unless the
// configured URL is itself plain, and then stay on its host name.
func TestTrustCheckServerURL(t *testing.T) {
	httpsBase, _ := url.Parse("https://api.example.com")
	httpBase, _ := url.Parse("http://127.0.0.1:8080")
	tests := []struct {
		name string
		raw  string
		base *url.URL
		ok   bool
	}{
		{"wss from https", "wss://signal.example.net/api/v2/io", httpsBase, true},
		{"ws from https", "ws://api.example.com/api/v2/io", httpsBase, false},
		{"ws from http same host other port", "ws://127.0.0.1:9090/io", httpBase, true},
		{"ws from http other host", "ws://attacker.example:80/io", httpBase, false},
		{"ws from http localhost spelling", "ws://localhost:8080/io", httpBase, false},
		{"wss from http other host", "wss://signal.example.net/io", httpBase, true},
		{"user info", "wss://user:pw@signal.example.net/io", httpsBase, false},
		{"relative", "/api/v2/io", httpsBase, false},
		{"other scheme", "https://signal.example.net/io", httpsBase, false},
		{"no host", "wss:///io", httpsBase, false},
		{"garbage", "wss://[::1", httpsBase, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := httpx.CheckServerURL("ws_endpoint", tt.raw, tt.base, "wss", "ws")
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (strings.Contains(err.Error(), "/io") || strings.Contains(err.Error(), "pw")) {
				t.Errorf("error shows the URL: %v", err)
			}
		})
	}
}
