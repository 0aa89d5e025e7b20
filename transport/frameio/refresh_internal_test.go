package frameio

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

// TestTrustRefreshOutlivesItsCaller: refresh tokens rotate, so once the
// service has answered a refresh, the token sent is dead. A caller that
// gave up while the answer was on its way (a session ending under load) used
// to abort the read and keep the dead token: the next refresh got
// invalid_grant and the device needed re-pairing (seen in the fault campaign
// on a loaded machine). The refresh now completes and stores the new token.
func TestTrustRefreshOutlivesItsCaller(t *testing.T) {
	var mu sync.Mutex
	live := "refresh-0"
	n := 0
	answered := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		if r.FormValue("refresh_token") != live {
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		n++
		live = fmt.Sprintf("refresh-%d", n) // rotated the moment it is used
		body := fmt.Sprintf(`{"access_token":"access-%d","expires_in":28800,"refresh_token":%q,"token_type":"bearer"}`, n, live)
		mu.Unlock()
		answered <- struct{}{}
		time.Sleep(300 * time.Millisecond) // the answer is on its way when the caller gives up
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	defer srv.Close()

	cfg := &Config{APIURL: srv.URL}
	a, err := newAPI(cfg, "test", clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := SaveTokens(path, &Tokens{AccessToken: "access-0", RefreshToken: "refresh-0", ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	src := newTokenSource(path, a, "client", "secret", clock.Real{}, slog.New(slog.DiscardHandler))

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-answered; cancel() }()
	_, _ = src.Refresh(ctx, "access-0")

	tok, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "refresh-1" {
		t.Fatalf("stored refresh token %q after the caller gave up; the service rotated it to refresh-1", tok.RefreshToken)
	}
	if _, err := src.Refresh(context.Background(), tok.AccessToken+"-stale"); err != nil {
		t.Fatalf("the next refresh: %v", err)
	}
}
