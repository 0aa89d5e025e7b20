package console_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/console"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// pairFixture is a console with one frameio link "fio" against a Frame.io
// fake; its tokens go to the returned path.
func pairFixture(t *testing.T, fo frameiotest.Options) (*fixture, *frameiotest.Server, string) {
	t.Helper()
	if fo.Interval == 0 {
		fo.Interval = 1 // seconds between polls: the shortest the API allows
	}
	fake, err := frameiotest.New(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	path := filepath.Join(t.TempDir(), "links", "fio", "tokens.json")
	link := console.FrameIOLink{Link: "fio", TokenPath: path, Config: frameio.Config{APIURL: fake.URL(), SocketURL: fake.SocketURL(),
		ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}}
	f := steerFixture(t, nil, nil, func() []console.FrameIOLink { return []console.FrameIOLink{link} })
	return f, fake, path
}

func pairingOf(t *testing.T, f *fixture) console.PairView {
	t.Helper()
	code, body := f.call("GET", "/api/frameio/fio", "")
	if code != 200 {
		t.Fatalf("GET /api/frameio/fio: %d %s", code, body)
	}
	var v console.PairView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

var sixDigits = regexp.MustCompile(`^[0-9]{6}$`)

// TestPairingFromTheConsole: pairing started from the API shows the
// six-digit code, the verification URL and the countdown while Frame.io
// waits; a second start is refused meanwhile; once approved it shows the
// project and who authorized, with the tokens where the link reads them;
// unpairing deauthorizes and deletes them.
func TestPairingFromTheConsole(t *testing.T) {
	f, fake, path := pairFixture(t, frameiotest.Options{})
	fake.SetPairScript("authorization_pending")
	if v := pairingOf(t, f); v.Paired || v.Pairing.State != frameio.PairIdle {
		t.Fatalf("before pairing: %+v", v)
	}
	code, body := f.call("POST", "/api/frameio/fio/pair", "", csrf...)
	if code != 202 {
		t.Fatalf("pair: %d %s", code, body)
	}
	var st frameio.PairStatus
	agenttest.Eventually(t, "the code shown", func() bool {
		st = pairingOf(t, f).Pairing
		return st.State == frameio.PairWaiting || st.State.Final()
	})
	if st.State != frameio.PairWaiting || !sixDigits.MatchString(st.Code) || !strings.HasPrefix(st.VerificationURLComplete, fake.URL()+"/pair") ||
		st.ExpiresIn <= 0 || st.ExpiresIn > 120 || st.DeviceName != "bench" {
		t.Errorf("waiting: %+v", st)
	}
	if code, _ := f.call("POST", "/api/frameio/fio/pair", "", csrf...); code != 409 && !pairingOf(t, f).Pairing.State.Final() {
		t.Errorf("a second pair while pairing: %d, want 409", code)
	}
	var v console.PairView
	agenttest.Eventually(t, "paired", func() bool {
		v = pairingOf(t, f)
		return v.Pairing.State.Final()
	})
	if v.Pairing.State != frameio.PairPaired || !v.Paired || v.Project != "Fake Project" || v.AuthorizedBy != "Fake User" {
		t.Errorf("paired: %+v", v)
	}
	if tok, err := frameio.LoadTokens(path); err != nil || tok.RefreshToken == "" {
		t.Errorf("tokens where the link reads them: %+v, %v", tok, err)
	}
	if _, body := f.call("GET", "/api/frameio", ""); strings.Contains(body, "dc-") || strings.Contains(body, "rt-") {
		t.Errorf("the pairing view shows a device code or a token:\n%s", body)
	}
	if code, body := f.call("POST", "/api/frameio/fio/unpair", "", csrf...); code != 200 {
		t.Fatalf("unpair: %d %s", code, body)
	}
	if v := pairingOf(t, f); v.Paired || v.Project != "" {
		t.Errorf("after unpair: %+v", v)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) || fake.Stats().Revokes != 1 {
		t.Errorf("after unpair the tokens are %v, revokes %d", err, fake.Stats().Revokes)
	}
	if code, _ := f.call("POST", "/api/frameio/fio/unpair", "", csrf...); code != 409 {
		t.Errorf("unpair when not paired: %d, want 409", code)
	}
}

// TestPairingCancelledFromTheConsole: cancel while the code is shown ends
// the pairing (no tokens); unknown links are 404s; the console's end
// cancels a pairing still running (the goroutine leak check would see it
// otherwise).
func TestPairingCancelledFromTheConsole(t *testing.T) {
	f, fake, path := pairFixture(t, frameiotest.Options{})
	pending := make([]string, 100)
	for i := range pending {
		pending[i] = "authorization_pending"
	}
	fake.SetPairScript(pending...)
	if code, body := f.call("POST", "/api/frameio/fio/pair", "", csrf...); code != 202 {
		t.Fatalf("pair: %d %s", code, body)
	}
	agenttest.Eventually(t, "the code shown", func() bool { return pairingOf(t, f).Pairing.State == frameio.PairWaiting })
	code, body := f.call("POST", "/api/frameio/fio/pair/cancel", "", csrf...)
	var v console.PairView
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || v.Pairing.State != frameio.PairCancelled || v.Paired {
		t.Errorf("cancel: %d %s", code, body)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tokens after a cancelled pairing: %v", err)
	}
	for _, p := range []string{"/api/frameio/other/pair", "/api/frameio/other/unpair"} {
		if code, _ := f.call("POST", p, "", csrf...); code != 404 {
			t.Errorf("POST %s: %d, want 404", p, code)
		}
	}
	if code, _ := f.call("POST", "/api/frameio/fio/pair", "", csrf...); code != 202 {
		t.Fatalf("pair again: %d", code)
	}
	agenttest.Eventually(t, "the new code shown", func() bool { return pairingOf(t, f).Pairing.State == frameio.PairWaiting })
	f.cancel() // Run ends, and waits for the pairing it cancels
	<-f.done
	if v := pairingOf(t, f); v.Pairing.State != frameio.PairCancelled {
		t.Errorf("after the console's end: %+v", v.Pairing)
	}
	if code, _ := f.call("POST", "/api/frameio/fio/pair", "", csrf...); code != 503 {
		t.Errorf("pair after the console's end: %d, want 503", code)
	}
}

// TestPageShowsPairing: the page renders the pairing card and loads its
// script.
func TestPageShowsPairing(t *testing.T) {
	f, _, _ := pairFixture(t, frameiotest.Options{})
	resp := f.req("GET", "/", "")
	defer resp.Body.Close()
	page := readAll(t, resp)
	for _, want := range []string{`data-pairing="fio"`, `not paired`, `<script src="/console/pairing.js" defer></script>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}
