package camserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
)

// TestTrustCamserverRedirects: authorize.json (the password in the POST
// body) is answered with a redirect. On main the client followed it: a
// 307/308 re-sent the password, a 301/302/303 turned the POST into a GET,
// and the front's answers were followed ten times before Go gave up. Now
// the first redirect is refused with an error naming its status and
// target, nothing reaches the other host, the error is not permanent, and
// the link authorizes once the redirect is gone.
func TestTrustCamserverRedirects(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := newServer(t, camservertest.Options{TLS: true})
			sink := httpxtest.NewSink(false)
			defer sink.Close()
			cfg := camserver.Config{URL: srv.URL(), User: "demo", Password: "demo-pass", Device: "pi-redirect"}
			cfg.CAFile = filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(cfg.CAFile, srv.CAPEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg.SetDefaults()
			l, err := camserver.New(cfg, agenttest.Deps(t, "cs", nil, nil), camserver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			srv.Redirect("/authorize.json", status, sink.URL())
			_, err = l.Dial(context.Background())
			if err == nil || !strings.Contains(err.Error(), "redirect refused") || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", status)) {
				t.Fatalf("Dial err = %v, want a refused redirect naming HTTP %d", err, status)
			}
			if retry.IsPermanent(err) {
				t.Errorf("a refused redirect failed the link for good: %v", err)
			}
			if strings.Contains(err.Error(), "demo-pass") {
				t.Errorf("the password is in the error: %v", err)
			}
			if n := srv.Redirected(); n != 1 {
				t.Errorf("authorize sent %d times into the redirect, want once", n)
			}
			if n := len(sink.Requests()); n != 0 || sink.Saw("demo-pass") {
				t.Errorf("%d requests reached the other host", n)
			}
			srv.Redirect("", 0, "")
			s, err := l.Dial(context.Background())
			if err != nil {
				t.Fatalf("Dial after the redirect ended: %v", err)
			}
			s.Close()
		})
	}
}
