package console_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/console"
)

var beyondLoopback = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 8780}

// capture is a cheap action: one still of the camera.
const captureBody = `{"sensor":"cam","seconds":0}`

// TestAccessOnLoopback: views and actions are open to the board's users,
// but every action still needs the CSRF token (or the Bearer token), and a
// request naming another origin is refused, so a web page in the user's
// browser cannot act on the console.
func TestAccessOnLoopback(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	bearer := []string{"Authorization", "Bearer " + f.token()}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		hdr    []string
		want   int
	}{
		{"view", "GET", "/api/links", "", nil, 200},
		{"page", "GET", "/", "", nil, 200},
		{"action without CSRF", "POST", "/api/captures", captureBody, nil, 403},
		{"action with a CSRF header but no cookie", "POST", "/api/captures", captureBody, []string{"X-CSRF-Token", "00112233445566778899aabbccddeeff"}, 403},
		{"action with a wrong CSRF header", "POST", "/api/captures", captureBody, []string{"Cookie", "edge_agent_csrf=00112233445566778899aabbccddeeff", "X-CSRF-Token", "ffeeddccbbaa99887766554433221100"}, 403},
		{"action from another origin", "POST", "/api/captures", captureBody, append([]string{"Origin", "http://evil.example"}, csrf...), 403},
		{"action from another site (fetch metadata)", "POST", "/api/captures", captureBody, append([]string{"Sec-Fetch-Site", "cross-site"}, csrf...), 403},
		{"action with a wrong Bearer token", "POST", "/api/captures", captureBody, []string{"Authorization", "Bearer nope"}, 401},
		{"action with CSRF", "POST", "/api/captures", captureBody, append([]string{"Origin", f.srv.URL}, csrf...), 202},
		{"delete without CSRF", "DELETE", "/api/captures/c1", "", nil, 403},
		{"action with the Bearer token", "POST", "/api/captures/c1/cancel", "", bearer, 200},
	} {
		code, body := f.call(tc.method, tc.path, tc.body, tc.hdr...)
		if code != tc.want {
			t.Errorf("%s: %s %s: %d, want %d (%s)", tc.name, tc.method, tc.path, code, tc.want, strings.TrimSpace(body))
		}
	}
	var sess map[string]any
	getJSON(t, f, "/api/session", &sess)
	if sess["remote"] != false || sess["can_act"] != true || sess["can_view"] != true || sess["csrf"] == "" {
		t.Errorf("session on loopback: %v", sess)
	}
}

// TestAccessBeyondLoopback: actions need the token, by Bearer header or by
// the session cookie POST /api/login sets (plus the CSRF token); views too,
// unless open_readonly.
func TestAccessBeyondLoopback(t *testing.T) {
	f := newFixture(t, fixtureOpts{listen: beyondLoopback})
	tok := f.token()
	if len(tok) != 64 {
		t.Fatalf("token %q: want 64 hex characters", tok)
	}
	bearer := []string{"Authorization", "Bearer " + tok}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		hdr    []string
		want   int
	}{
		{"view without the token", "GET", "/api/links", "", nil, 401},
		{"live view without the token", "GET", "/api/sensors/cam/mjpeg", "", nil, 401},
		{"config without the token", "GET", "/api/config", "", nil, 401},
		{"view with a wrong token", "GET", "/api/links", "", []string{"Authorization", "Bearer " + strings.Repeat("0", 64)}, 401},
		{"view with the token", "GET", "/api/links", "", bearer, 200},
		{"action with CSRF but no token", "POST", "/api/captures", captureBody, csrf, 401},
		{"action with the token", "POST", "/api/captures", captureBody, bearer, 202},
		{"action with a stale session cookie", "POST", "/api/captures/c1/cancel", "", []string{"Cookie", "edge_agent_session=abc; edge_agent_csrf=00112233445566778899aabbccddeeff", "X-CSRF-Token", "00112233445566778899aabbccddeeff"}, 401},
		{"login with a wrong token", "POST", "/api/login", `{"token":"nope"}`, csrf, 401},
		{"login without CSRF", "POST", "/api/login", `{"token":"` + tok + `"}`, nil, 403},
		{"static files stay open", "GET", "/console/console.css", "", nil, 200},
		{"the sign-in page stays open", "GET", "/", "", nil, 200},
		{"the status server's paths are unchanged", "GET", "/status", "", nil, 200},
	} {
		code, body := f.call(tc.method, tc.path, tc.body, tc.hdr...)
		if code != tc.want {
			t.Errorf("%s: %s %s: %d, want %d (%s)", tc.name, tc.method, tc.path, code, tc.want, strings.TrimSpace(body))
		}
	}
	// The page without the token is the sign-in form and nothing else.
	_, page := f.call("GET", "/", "")
	if !strings.Contains(page, `id="login"`) || strings.Contains(page, `data-link="studio"`) || strings.Contains(page, "config-yaml") {
		t.Errorf("the page shows more than the sign-in form without the token")
	}

	// A browser signs in: the session cookie then opens views and, with
	// the CSRF token, actions.
	resp := f.req("POST", "/api/login", `{"token":"`+tok+`"}`, csrf...)
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "edge_agent_session" {
			session = c
		}
	}
	if resp.StatusCode != 200 || session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %s, cookies %v", resp.Status, resp.Cookies())
	}
	if strings.Contains(session.Value, tok) {
		t.Fatal("the session cookie holds the token itself")
	}
	cookie := "edge_agent_session=" + session.Value + "; edge_agent_csrf=00112233445566778899aabbccddeeff"
	if code, _ := f.call("GET", "/api/config", "", "Cookie", cookie); code != 200 {
		t.Errorf("view with the session cookie: %d", code)
	}
	if code, body := f.call("POST", "/api/captures/c1/cancel", "", "Cookie", cookie); code != 403 {
		t.Errorf("action with the session cookie but no CSRF header: %d %s", code, body)
	}
	if code, body := f.call("POST", "/api/captures/c1/cancel", "", "Cookie", cookie, "X-CSRF-Token", "00112233445566778899aabbccddeeff"); code != 200 {
		t.Errorf("action with the session cookie and CSRF: %d %s", code, body)
	}
	_, page = f.call("GET", "/", "", "Cookie", cookie)
	if !strings.Contains(page, `data-link="studio"`) || !strings.Contains(page, `id="logout"`) {
		t.Errorf("the signed-in page lacks the views or the sign-out button")
	}
	resp = f.req("POST", "/api/logout", "", "Cookie", cookie, "X-CSRF-Token", "00112233445566778899aabbccddeeff")
	resp.Body.Close()
	if resp.StatusCode != 204 || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %s %v", resp.Status, resp.Cookies())
	}
}

// TestAccessOpenReadonly: with status.open_readonly the views are open
// beyond loopback; actions still need the token.
func TestAccessOpenReadonly(t *testing.T) {
	f := newFixture(t, fixtureOpts{listen: beyondLoopback, openReadonly: true})
	if code, _ := f.call("GET", "/api/links", ""); code != 200 {
		t.Errorf("view: %d", code)
	}
	if code, _ := f.call("GET", "/api/config", ""); code != 200 {
		t.Errorf("config: %d", code)
	}
	if code, _ := f.call("POST", "/api/captures", captureBody, csrf...); code != 401 {
		t.Errorf("action without the token: %d", code)
	}
	var sess map[string]any
	getJSON(t, f, "/api/session", &sess)
	if sess["remote"] != true || sess["can_view"] != true || sess["can_act"] != false || sess["token_required"] != true {
		t.Errorf("session: %v", sess)
	}
	_, page := f.call("GET", "/", "")
	if !strings.Contains(page, `data-link="studio"`) || !strings.Contains(page, `id="login"`) {
		t.Errorf("the open page lacks the views or the sign-in form")
	}
}

// TestAccessWithoutAToken: a token that cannot be made closes the actions
// beyond loopback (fail closed) and the views stay as configured.
func TestAccessWithoutAToken(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOpts{listen: beyondLoopback, openReadonly: true, tokenFile: filepath.Join(blocker, "token")})
	code, body := f.call("POST", "/api/captures", captureBody, csrf...)
	if code != 403 || !strings.Contains(body, "could not be read or made") {
		t.Errorf("action: %d %s", code, body)
	}
	if code, body := f.call("POST", "/api/login", `{"token":"anything-at-all"}`, csrf...); code != 401 {
		t.Errorf("login: %d %s", code, body)
	}
	if code, _ := f.call("GET", "/api/links", ""); code != 200 {
		t.Errorf("open view: %d", code)
	}
}

// TestTokenFile: made once, 0600, then read back; a short one is refused.
func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "console-token")
	tok, created, err := console.LoadOrCreateToken(path)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	again, created, err := console.LoadOrCreateToken(path)
	if err != nil || created || again != tok {
		t.Fatalf("second: %q %v %v", again, created, err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := console.LoadOrCreateToken(path); err == nil {
		t.Fatal("a 5-character token was accepted")
	}
}

// TestSessionJSON documents the fields of GET /api/session.
func TestSessionJSON(t *testing.T) {
	f := newFixture(t, fixtureOpts{listen: beyondLoopback})
	code, body := f.call("GET", "/api/session", "", "Authorization", "Bearer "+f.token())
	var s map[string]any
	if err := json.Unmarshal([]byte(body), &s); code != 200 || err != nil {
		t.Fatalf("%d %v %s", code, err, body)
	}
	for _, k := range []string{"remote", "token_required", "views_open", "authenticated", "can_view", "can_act", "csrf"} {
		if _, ok := s[k]; !ok {
			t.Errorf("session lacks %q: %s", k, body)
		}
	}
	if s["authenticated"] != true || s["can_act"] != true {
		t.Errorf("Bearer session: %s", body)
	}
}
