package rtm_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// tokenURLConfig points cfg at the fake's token endpoint instead of a
// static token.
func tokenURLConfig(e *env) rtm.Config {
	cfg := e.cfg
	cfg.Token, cfg.TokenURL, cfg.TokenURLKey = "", e.fake.TokenURL(), e.fake.DeviceKey()
	return cfg
}

// TestTokenURLRenewsAfterExpiry: the service expires every token and ends
// the session; the link's next set-up meets 401, fetches a new token from
// token_url and is up again without a failed state, each time.
func TestTokenURLRenewsAfterExpiry(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	logs := &logxtest.Buffer{}
	e.deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sup := runLink(t, e, tokenURLConfig(e))
	waitActive(t, e, sup, 0)
	if m, r := e.fake.Minted(), e.fake.Rejected(); m != 1 || r != 0 {
		t.Fatalf("first session: minted %d, rejected %d; want 1, 0", m, r)
	}
	var seen []string
	const rounds = 3
	for i := range rounds {
		before := activeSessions(e.fake)
		seen = append(seen, e.fake.Token())
		e.fake.ExpireTokens()
		e.fake.DropSockets()
		waitActive(t, e, sup, before)
		if got := sup.Status().State; got == supervisor.Failed {
			t.Fatalf("round %d: link failed: %s", i, sup.Status().LastError)
		}
	}
	// Each expiry costs exactly one refused set-up and one new token.
	if m, r := e.fake.Minted(), e.fake.Rejected(); m != rounds+1 || r != rounds {
		t.Errorf("minted %d, rejected %d; want %d, %d", m, r, rounds+1, rounds)
	}
	out := logs.String()
	if !strings.Contains(out, "rtm token renewed") {
		t.Errorf("no renewal logged:\n%s", out)
	}
	secrets := append(append(seen, e.fake.Issued()...), e.fake.DeviceKey())
	if len(secrets) != 2*rounds+1+1 {
		t.Fatalf("%d secrets to look for", len(secrets))
	}
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds a secret %q", secret[:4]+"…")
		}
	}
}

// TestTokenRenewedBeforeExpiry: a token near its exp is renewed before it is
// presented, so the service never refuses one.
func TestTokenRenewedBeforeExpiry(t *testing.T) {
	// 3 s tokens: the refresh window is capped at half the lifetime (1.5 s).
	e := newEnvWith(t, rtmtest.Options{PingInterval: 100 * time.Millisecond, TokenTTL: 3 * time.Second})
	sup := runLink(t, e, tokenURLConfig(e))
	waitActive(t, e, sup, 0)
	for i, wait := range []time.Duration{0, 1700 * time.Millisecond, 3500 * time.Millisecond} {
		time.Sleep(wait) // 0: still fresh; 1.7 s: in the window; 3.5 s: past exp
		before, minted := activeSessions(e.fake), e.fake.Minted()
		e.fake.DropSockets()
		waitActive(t, e, sup, before)
		want := minted
		if wait > 0 {
			want++
		}
		if got := e.fake.Minted(); got != want {
			t.Errorf("round %d (after %v): minted %d, want %d", i, wait, got, want)
		}
	}
	if r := e.fake.Rejected(); r != 0 {
		t.Errorf("the service refused %d set-ups; the link should renew before exp", r)
	}
}

// TestTokenFileReReadAfterRejection: with token_file, a refused token makes
// the link re-read the file; while it holds the old token the link retries
// (not failed) and says it waits; a new token in the file brings it back.
func TestTokenFileReReadAfterRejection(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	path := filepath.Join(t.TempDir(), "rtm-token")
	if err := atomicfile.WriteFile(path, []byte(e.fake.Token()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Token, cfg.TokenFile = "", path
	sup := runLink(t, e, cfg)
	waitActive(t, e, sup, 0)

	before := activeSessions(e.fake)
	e.fake.ExpireTokens()
	e.fake.DropSockets()
	agenttest.Eventually(t, "the link to wait for a new token", func() bool {
		return strings.Contains(sup.Status().LastError, "waiting for a new one in "+path)
	})
	if st := sup.Status(); st.State == supervisor.Failed {
		t.Fatalf("link failed: %s", st.LastError)
	}
	if err := atomicfile.WriteFile(path, []byte(e.fake.Token()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitActive(t, e, sup, before)
}

// TestTokenInlineRejectionIsPermanent: an inline token cannot be renewed.
func TestTokenInlineRejectionIsPermanent(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	sup := runLink(t, e, e.cfg)
	waitActive(t, e, sup, 0)
	e.fake.ExpireTokens()
	e.fake.DropSockets()
	agenttest.Eventually(t, "the link to fail", func() bool { return sup.Status().State == supervisor.Failed })
	if msg := sup.Status().LastError; !strings.Contains(msg, "inline token") {
		t.Errorf("last error %q does not say why", msg)
	}
}

// TestTokenURLDeviceKeyRejected: a refused device key is named in the
// error (retried: TestTrustTokenURLRefusalIsRetried), and the key is not
// in the message.
func TestTokenURLDeviceKeyRejected(t *testing.T) {
	e := newEnv(t, time.Second)
	cfg := tokenURLConfig(e)
	cfg.TokenURLKey = "not-this-devices-key-0123"
	link, err := rtm.New(cfg, e.deps, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = link.Dial(t.Context())
	if err == nil || retry.IsPermanent(err) || !strings.Contains(err.Error(), "device key rejected") {
		t.Fatalf("dial = %v, want a (retried) device key error", err)
	}
	if strings.Contains(err.Error(), cfg.TokenURLKey) {
		t.Errorf("error leaks the key: %v", err)
	}
	if e.fake.Minted() != 0 || len(e.fake.Sessions()) != 0 {
		t.Errorf("minted %d, sessions %d after a refused key", e.fake.Minted(), len(e.fake.Sessions()))
	}
}
