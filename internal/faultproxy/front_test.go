package faultproxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edge-agent/edge-agent/internal/faultproxy"
)

// TestFrontFailsChosenRequests: the next n requests of a path prefix get
// the scripted answer; everything else reaches the target.
func TestFrontFailsChosenRequests(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "target "+r.URL.Path)
	}))
	defer target.Close()
	f, err := faultproxy.NewFront(target.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.FailNext("/v2/auth/", 404, 2, `{"error":"nope"}`)
	get := func(path string) (int, string, string) {
		resp, err := http.Post(f.URL()+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for range 2 {
		if st, ct, body := get("/v2/auth/token"); st != 404 || ct != "application/json" || body != `{"error":"nope"}` {
			t.Fatalf("failed answer = %d %q %q", st, ct, body)
		}
	}
	if st, _, body := get("/v2/auth/token"); st != 200 || body != "target /v2/auth/token" {
		t.Fatalf("third answer = %d %q, want the target's", st, body)
	}
	if st, _, _ := get("/other"); st != 200 {
		t.Fatalf("other path = %d", st)
	}
	if f.Failed() != 2 || f.Pending() != 0 {
		t.Fatalf("failed %d pending %d", f.Failed(), f.Pending())
	}
	http.DefaultClient.CloseIdleConnections()
}
