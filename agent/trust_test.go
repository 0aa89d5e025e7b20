package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// runAgent starts the agent on cfg with its status server on a loopback
// port; the returned stop cancels it and waits.
func runAgent(t *testing.T, cfg *config.Config, log *slog.Logger) (*agent.Agent, string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.Options{Version: "test", Logger: log, StatusListener: ln})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return a, ln.Addr().String(), stop
}

func httpGet(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTrustEchoedTokenNotOnStatusPage: Frame.io answering with a message
// that repeats the access token put the token into the journal, /status
// and the status page. The whole agent runs against the echoing fake.
func TestTrustEchoedTokenNotOnStatusPage(t *testing.T) {
	fake, err := frameiotest.New(frameiotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	access, refresh, exp := fake.IssueTokens()
	now := time.Now().UTC()
	if err := frameio.SaveTokens(tokens, &frameio.Tokens{AccessToken: access, RefreshToken: refresh,
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(exp) * time.Second)}); err != nil {
		t.Fatal(err)
	}
	fake.EchoCredentials(true)
	cfg, err := config.Parse("test.yaml", fmt.Appendf(nil, `
device: {id: test-device, name: bench, type: TEST}
state_dir: %s
backoff: {min: 10ms, max: 50ms}
links:
  - name: fio
    kind: frameio
    frameio: {api_url: %q, socket_url: %q, client_id: %s, client_secret: %s, token_file: %s}
`, filepath.Join(dir, "state"), fake.URL(), fake.SocketURL(), fake.ClientID(), fake.ClientSecret(), tokens))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logxtest.Buffer{}
	a, addr, stop := runAgent(t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	agenttest.Eventually(t, "the link to fail on the echo", func() bool {
		return strings.Contains(link(a.Snapshot(), "fio").LastError, "cannot serve")
	})
	for _, path := range []string{"/status", "/", "/metrics"} {
		code, body := httpGet(t, "http://"+addr+path, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		if strings.Contains(body, access) {
			t.Errorf("GET %s shows the access token:\n%s", path, body)
		}
		if strings.ContainsRune(body, '\x1b') {
			t.Errorf("GET %s shows the peer's escape sequence", path)
		}
	}
	stop()
	if s := logs.String(); strings.Contains(s, access) || strings.Contains(s, fake.ClientSecret()) {
		t.Errorf("a secret reached the log:\n%s", s)
	}
}

// TestTrustStatusServerRefusesRebinding: DNS rebinding read /status and the
// profiler through a browser on the LAN. The agent's status server answers
// only requests naming this board: its address, localhost or host name.
func TestTrustStatusServerRefusesRebinding(t *testing.T) {
	cfg, err := config.Parse("test.yaml", fmt.Appendf(nil, "device: {id: d, name: bench, type: TEST}\nstate_dir: %s\nstatus: {pprof: true}\n", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := runAgent(t, cfg, nil)
	_, port, _ := net.SplitHostPort(addr)
	hostname, _ := os.Hostname()
	for _, tc := range []struct {
		host string
		want int
	}{
		{"attacker.example:" + port, http.StatusMisdirectedRequest},
		{"attacker.example", http.StatusMisdirectedRequest},
		{addr, http.StatusOK},
		{"localhost:" + port, http.StatusOK},
		{hostname + ":" + port, http.StatusOK},
		{hostname + ".local", http.StatusOK},
	} {
		for _, path := range []string{"/status", "/debug/pprof/"} {
			if code, _ := httpGet(t, "http://"+addr+path, tc.host); code != tc.want {
				t.Errorf("Host %q GET %s: %d, want %d", tc.host, path, code, tc.want)
			}
		}
	}
}
