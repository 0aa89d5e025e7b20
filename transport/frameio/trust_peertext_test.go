package frameio_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// controlRunes are the characters a peer's text must never carry into a
// log line, an error or a terminal.
const controlRunes = "\x1b\x07\n\r"

// TestTrustEchoedTokenStaysOutOfErrorsAndLogs: Frame.io (or a proxy in
// front of it) answers with a message repeating the Authorization header.
// The link used to keep 80 characters of that message, the whole access
// token, and hand it to the supervisor (/status) and the journal.
func TestTrustEchoedTokenStaysOutOfErrorsAndLogs(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	tok, err := frameio.LoadTokens(frameio.TokenPath(&e.cfg, e.deps.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	fake.EchoCredentials(true)
	l := e.link(t, fastOptions())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = l.Dial(ctx)
	if err == nil {
		t.Fatal("Dial succeeded against a failing devices/me")
	}
	msg := err.Error()
	if !strings.Contains(msg, "cannot serve") {
		t.Fatalf("the echo was not exercised: %v", msg)
	}
	if strings.Contains(msg, tok.AccessToken) || strings.ContainsAny(msg, controlRunes) {
		t.Errorf("Dial error carries the echoed token or control characters: %q", msg)
	}

	// The worker: an asset create answered with the echo, retried by the
	// spool, logged each time.
	putAsset(t, e.spool, "a.jpg", "image/jpeg", time.Now(), []byte("jpeg"))
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	before := fake.Echoed()
	agenttest.Eventually(t, "two more echoed answers", func() bool { return fake.Echoed() >= before+2 })
	logs := e.logs.String()
	if strings.Contains(logs, tok.AccessToken) {
		t.Errorf("the access token reached the log:\n%s", logs)
	}
	if !strings.Contains(logs, "[REDACTED]") {
		t.Errorf("no echo reached the log masked; was it exercised?\n%s", logs)
	}
	for k, v := range e.stats.Details() {
		if strings.Contains(v, tok.AccessToken) || strings.ContainsAny(v, controlRunes) {
			t.Errorf("status detail %s = %q", k, v)
		}
	}
}

// TestTrustPairPrintsNoControlCharacters: `edge-agent pair` printed the
// server's device name, code and URLs raw, so a hostile server set the
// terminal's title and cleared the screen; it must also not print the
// client secret or a token the server echoes.
func TestTrustPairPrintsNoControlCharacters(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	fake.EchoCredentials(true)
	cfg := frameio.Config{APIURL: fake.URL(), SocketURL: fake.SocketURL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
	path := filepath.Join(t.TempDir(), "tokens.json")
	for _, terminal := range []bool{false, true} {
		var out bytes.Buffer
		_, err := frameio.Pair(context.Background(), cfg, frameio.PairOptions{TokenPath: path, DeviceName: "pi-lab-01",
			Version: "1.4.0", Out: &out, Clock: clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), Terminal: terminal})
		if err != nil {
			t.Fatalf("terminal=%v: pair: %v", terminal, err)
		}
		tok, err := frameio.LoadTokens(path)
		if err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if !strings.Contains(got, "]0;pwned") {
			t.Fatalf("terminal=%v: the hostile name was not shown at all:\n%q", terminal, got)
		}
		if strings.ContainsAny(got, "\x1b\x07") || strings.Contains(got, "\nlevel=INFO msg=forged") {
			t.Errorf("terminal=%v: pair printed the server's control characters:\n%q", terminal, got)
		}
		for _, secret := range []string{fake.ClientSecret(), tok.AccessToken, tok.RefreshToken} {
			if strings.Contains(got, secret) {
				t.Errorf("terminal=%v: pair printed a secret %q:\n%q", terminal, secret, got)
			}
		}
		_ = os.Remove(path)
	}
}
