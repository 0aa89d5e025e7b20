package rtmtest_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSimDemoLinkAndEndpoints(t *testing.T) {
	svc, err := rtmtest.NewSim("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if svc.Kind() != "rtm" {
		t.Errorf("kind %q", svc.Kind())
	}
	urls := svc.URLs()
	for _, k := range []string{"ws", "api", "token", "upload", "status"} {
		if urls[k] == "" {
			t.Errorf("URLs()[%q] missing: %v", k, urls)
		}
	}
	dir := t.TempDir()
	block, err := svc.DemoLink(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, ok := block.(*rtm.Config)
	if !ok {
		t.Fatalf("DemoLink returned %T", block)
	}
	fi, err := os.Stat(cfg.TokenURLKeyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device key file %v mode %v", err, fi.Mode())
	}
	cfg.SetDefaults()
	v := conf.NewValidator()
	cfg.Validate(v)
	if p := v.Problems(); len(p) != 0 {
		t.Fatalf("demo block does not validate: %v", p)
	}
	if cfg.Video != "video" || cfg.Audio != "mic" || cfg.Record.Start != "auto" || cfg.TokenURL != urls["token"] {
		t.Errorf("demo block %+v", cfg)
	}
	s := svc.(*rtmtest.Sim)
	token := mint(t, urls["token"], cfg.TokenURLKey)
	forged := token[:len(token)-5] + "AAAAA" // another signature
	if forged == token {
		forged = token[:len(token)-5] + "BBBBB"
	}

	tests := []struct {
		name   string
		method string
		url    string
		auth   string
		body   string
		want   int
	}{
		{name: "status", method: "GET", url: urls["status"], want: 200},
		{name: "token without key", method: "POST", url: urls["token"], body: `{"client_id":"x"}`, want: 401},
		{name: "token with another key", method: "POST", url: urls["token"], auth: "Bearer nope", body: `{"client_id":"x"}`, want: 401},
		{name: "token without client", method: "POST", url: urls["token"], auth: "Bearer " + cfg.TokenURLKey, body: `{}`, want: 400},
		{name: "rest session with a forged token", method: "POST", url: urls["api"] + "/api/v2/session", auth: "Bearer " + forged, body: `{"client_id":"x"}`, want: 401},
		{name: "rest session with the static token", method: "POST", url: urls["api"] + "/api/v2/session", auth: "Bearer " + s.Token(), body: `{"client_id":"x"}`, want: 201},
		{name: "ws without token", method: "GET", url: strings.Replace(urls["ws"], "ws://", "http://", 1), want: 401},
		{name: "rest session without token", method: "POST", url: urls["api"] + "/api/v2/session", body: `{"client_id":"x"}`, want: 401},
		{name: "rest session", method: "POST", url: urls["api"] + "/api/v2/session", auth: "Bearer " + token, body: `{"client_id":"x"}`, want: 201},
		{name: "rest session without client", method: "POST", url: urls["api"] + "/api/v2/session", auth: "Bearer " + token, body: `{}`, want: 400},
		{name: "upload", method: "PUT", url: urls["upload"] + "r.h264", body: "data", want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, tc.url, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, tc.want)
			}
			if tc.name == "status" && !json.Valid(b) {
				t.Errorf("status is not JSON: %s", b)
			}
		})
	}
	// Expired: every token so far, minted or static, gets 401; a new one works.
	static := s.Token()
	s.ExpireTokens()
	for _, old := range []string{token, static} {
		if code := createSession(t, urls["api"], old); code != http.StatusUnauthorized {
			t.Errorf("expired token: status %d, want 401", code)
		}
	}
	if code := createSession(t, urls["api"], mint(t, urls["token"], cfg.TokenURLKey)); code != http.StatusCreated {
		t.Errorf("fresh token: status %d, want 201", code)
	}
	if s.Minted() != 2 || s.Rejected() != 5 || len(s.Issued()) != 2 {
		t.Errorf("minted %d, rejected %d, issued %d; want 2, 5, 2", s.Minted(), s.Rejected(), len(s.Issued()))
	}
	http.DefaultClient.CloseIdleConnections()
	if up := s.Uploads(); len(up) != 1 || up[0].Size != 4 {
		t.Errorf("uploads %+v", up)
	}
}

// mint gets a token from the fake's token endpoint.
func mint(t *testing.T, url, key string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(`{"client_id":"demo-device"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		AuthToken string `json:"auth_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusCreated || strings.Count(r.AuthToken, ".") != 2 {
		t.Fatalf("mint: status %d, %v, token %q", resp.StatusCode, err, r.AuthToken)
	}
	return r.AuthToken
}

// createSession POSTs a REST session with token and returns the status.
func createSession(t *testing.T, api, token string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", api+"/api/v2/session", strings.NewReader(`{"client_id":"x"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
