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
	for _, k := range []string{"ws", "api", "upload", "status"} {
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
	fi, err := os.Stat(cfg.TokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %v mode %v", err, fi.Mode())
	}
	cfg.SetDefaults()
	v := conf.NewValidator()
	cfg.Validate(v)
	if p := v.Problems(); len(p) != 0 {
		t.Fatalf("demo block does not validate: %v", p)
	}
	if cfg.Video != "video" || cfg.Audio != "mic" || cfg.Record.Start != "auto" {
		t.Errorf("demo block %+v", cfg)
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
		{name: "ws without token", method: "GET", url: strings.Replace(urls["ws"], "ws://", "http://", 1), want: 401},
		{name: "rest session without token", method: "POST", url: urls["api"] + "/api/v2/session", body: `{"client_id":"x"}`, want: 401},
		{name: "rest session", method: "POST", url: urls["api"] + "/api/v2/session", auth: "Bearer " + cfg.Token, body: `{"client_id":"x"}`, want: 201},
		{name: "rest session without client", method: "POST", url: urls["api"] + "/api/v2/session", auth: "Bearer " + cfg.Token, body: `{}`, want: 400},
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
	http.DefaultClient.CloseIdleConnections()
	s := svc.(*rtmtest.Sim)
	if up := s.Uploads(); len(up) != 1 || up[0].Size != 4 {
		t.Errorf("uploads %+v", up)
	}
}
