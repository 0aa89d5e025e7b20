package status_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edge-agent/edge-agent/agent/status"
)

// TestTrustStatusRefusesForeignHost: a page on another site can make a
// browser on the LAN resolve its own name to the board (DNS rebinding) and
// read /status or the profiler as same-origin. The Host header still names
// that site: such requests get 421; the board's own names, localhost and IP
// literals are served.
func TestTrustStatusRefusesForeignHost(t *testing.T) {
	s := status.New(snapshot, nil)
	s.EnablePprof()
	s.AllowHost("pi-lab-01", "pi-lab-01.local")
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		host string
		want int
	}{
		{"evil.example", http.StatusMisdirectedRequest},
		{"evil.example:8780", http.StatusMisdirectedRequest},
		{"rebind.attacker.test.", http.StatusMisdirectedRequest},
		{"127.0.0.1:8780", http.StatusOK},
		{"[::1]:8780", http.StatusOK},
		{"192.168.1.20", http.StatusOK},
		{"localhost:8780", http.StatusOK},
		{"LOCALHOST", http.StatusOK},
		{"pi-lab-01:8780", http.StatusOK},
		{"pi-lab-01.local.", http.StatusOK},
	} {
		for _, path := range []string{"/status", "/", "/metrics", "/debug/pprof/"} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			req.Host = tc.host
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("Host %q GET %s: %d, want %d", tc.host, path, resp.StatusCode, tc.want)
			}
		}
	}
}
