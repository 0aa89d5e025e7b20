package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/redact"
)

// The access rules (docs/API.md, "Access"):
//
//   - A loopback listener is reachable only by the board's own users: views
//     and actions are open, like `edge-agent sample` is to them.
//   - Beyond loopback every action (a POST or DELETE) needs the console
//     token: an `Authorization: Bearer <token>` header (scripts), or the
//     session cookie that POST /api/login sets for a browser that presented
//     it. Views need it as well unless status.open_readonly is true.
//   - Every POST and DELETE answered for a browser carries a CSRF token:
//     the X-CSRF-Token header must equal the edge_agent_csrf cookie (the
//     page reads it from its <meta name="csrf-token">). Another site can
//     make a browser send the cookie but cannot read it, and cannot add the
//     header without a CORS preflight the console never allows. A request
//     that names another origin (Origin, Sec-Fetch-Site) is refused before
//     that. A Bearer request needs no CSRF token: browsers never add that
//     header by themselves.
//   - Every answer carries a strict Content-Security-Policy: scripts,
//     styles, images and connections from this origin only, no inline
//     script or style, no framing.

// Cookie and header names.
const (
	sessionCookie = "edge_agent_session"
	csrfCookie    = "edge_agent_csrf"
	csrfHeader    = "X-CSRF-Token"
)

// contentSecurityPolicy is sent with every console answer. The page's
// script and style are files under /console/; the camera preview is an
// <img> on this origin; the feeds are EventSource and fetch on it.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// access decides who may see and do what; see the rules above.
//
// Concurrency: immutable after newAccess; safe for concurrent requests.
type access struct {
	remote       bool   // the listener is beyond loopback
	openReadonly bool   // views stay open beyond loopback
	token        string // "" when it could not be read or made
	tokenFile    string
	tokenErr     error
	session      string // the session cookie's value, derived from token
	log          *slog.Logger
}

// newAccess reads (or creates) the token when tokenFile is set and
// registers it with secrets, so it never reaches a log line.
func newAccess(listen net.Addr, tokenFile string, openReadonly bool, secrets *redact.Secrets, log *slog.Logger) *access {
	a := &access{remote: !isLoopback(listen), openReadonly: openReadonly, tokenFile: tokenFile, log: log}
	if tokenFile == "" {
		a.tokenErr = errors.New("no token file configured")
	} else if tok, _, err := LoadOrCreateToken(tokenFile); err != nil {
		a.tokenErr = err
	} else {
		a.token = tok
		secrets.Add(tok)
		a.session = sessionValue(tok)
		secrets.Add(a.session)
	}
	return a
}

// logMode says once, at Run, how the console is reachable.
func (a *access) logMode() {
	switch {
	case !a.remote:
		a.log.Debug("console open to this board's users (loopback listener)")
	case a.token == "":
		a.log.Error("console beyond loopback without a token: its actions are refused", "token_file", a.tokenFile, "err", a.tokenErr)
	default:
		a.log.Info("console reachable beyond loopback: actions need the console token", "token_file", a.tokenFile,
			"open_readonly", a.openReadonly)
	}
}

// isLoopback reports whether addr is a loopback TCP address. Unknown
// addresses count as beyond loopback, where the rules are stricter.
func isLoopback(addr net.Addr) bool {
	if addr == nil {
		return false
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadOrCreateToken returns the console token kept in path, making a new
// random one (256 bits, hex) in a 0600 file when path does not exist. The
// agent calls it at start; a command that prints the token for the user
// should call it too, so both agree on the file. created says whether this
// call made it.
func LoadOrCreateToken(path string) (token string, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return "", false, fmt.Errorf("console token %s: shorter than 16 characters", path)
		}
		return tok, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("console token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("console token: %w", err)
	}
	tok := hex.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("console token: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("console token: %w", err)
	}
	return tok, true, nil
}

// sessionValue is the session cookie for token: an HMAC of a fixed label
// under the token, so the cookie proves the token without being it, needs
// no server-side store, and every session ends when the token is replaced.
func sessionValue(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("edge-agent console session"))
	return hex.EncodeToString(m.Sum(nil))
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// authenticated reports whether r presents the token (Bearer) or the
// session cookie, and whether by Bearer.
func (a *access) authenticated(r *http.Request) (ok, bearer bool) {
	if a.token == "" {
		return false, false
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, found := strings.CutPrefix(h, "Bearer ")
		return found && equal(strings.TrimSpace(tok), a.token), true
	}
	if ck, err := r.Cookie(sessionCookie); err == nil && equal(ck.Value, a.session) {
		return true, false
	}
	return false, false
}

// mayView reports whether r may read the views.
func (a *access) mayView(r *http.Request) bool {
	if !a.remote || a.openReadonly {
		return true
	}
	ok, _ := a.authenticated(r)
	return ok
}

// setHeaders adds the security headers every answer carries.
func setHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// headers wraps h with the security headers only (files, the login).
func (a *access) headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		h.ServeHTTP(w, r)
	})
}

// guard wraps an API handler: views need mayView; actions need the CSRF
// check and, beyond loopback, the token.
func (a *access) guard(h http.HandlerFunc, isAction bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		w.Header().Set("Cache-Control", "no-store")
		if isAction {
			if code, msg := a.checkAction(r); code != 0 {
				apiError(w, code, "%s", msg)
				return
			}
		} else if !a.mayView(r) {
			apiError(w, http.StatusUnauthorized, "this console needs its token beyond loopback: POST /api/login or send Authorization: Bearer")
			return
		}
		h(w, r)
	})
}

// checkAction applies the rules for a state-changing request; it returns
// 0 when r may go on, else the status and the reason.
func (a *access) checkAction(r *http.Request) (int, string) {
	if msg := crossSite(r); msg != "" {
		return http.StatusForbidden, msg
	}
	ok, bearer := a.authenticated(r)
	if bearer && !ok {
		return http.StatusUnauthorized, "wrong console token"
	}
	if !bearer && !csrfOK(r) {
		return http.StatusForbidden, "missing or wrong CSRF token: send the " + csrfCookie + " cookie's value in " + csrfHeader
	}
	if a.remote && !ok {
		if a.token == "" {
			return http.StatusForbidden, "actions are refused: the console token could not be read or made (see the agent's log)"
		}
		return http.StatusUnauthorized, "this action needs the console token beyond loopback: POST /api/login or send Authorization: Bearer"
	}
	return 0, ""
}

// crossSite explains why r comes from another site, or returns "".
func crossSite(r *http.Request) string {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return "cross-site request refused"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || o == "null" || !strings.EqualFold(u.Host, r.Host) {
			return "request from another origin (" + redact.Clean(o, 100) + ") refused"
		}
	}
	return ""
}

// csrfOK is the double-submit check: the header equals the cookie.
func csrfOK(r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	return err == nil && len(ck.Value) >= 16 && equal(r.Header.Get(csrfHeader), ck.Value)
}

// csrfToken returns r's CSRF cookie value, or makes a new one and sets
// the cookie on w.
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 16 && len(ck.Value) <= 128 && isHex(ck.Value) {
		return ck.Value
	}
	raw := make([]byte, 16)
	_, _ = rand.Read(raw) // crypto/rand.Read does not fail (Go 1.24+)
	v := hex.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return v
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// session is GET /api/session: how this console may be used by the caller.
type session struct {
	// Remote: the listener is beyond loopback.
	Remote bool `json:"remote"`
	// TokenRequired: actions need the token (beyond loopback).
	TokenRequired bool `json:"token_required"`
	// ViewsOpen: views need no token.
	ViewsOpen bool `json:"views_open"`
	// Authenticated: the caller presented the token or the session cookie.
	Authenticated bool `json:"authenticated"`
	// CanView and CanAct sum the above up for the caller.
	CanView bool `json:"can_view"`
	CanAct  bool `json:"can_act"`
	// CSRF is the value to send in X-CSRF-Token (the cookie is set too).
	CSRF string `json:"csrf"`
}

func (a *access) sessionOf(w http.ResponseWriter, r *http.Request) session {
	ok, _ := a.authenticated(r)
	s := session{Remote: a.remote, TokenRequired: a.remote, ViewsOpen: !a.remote || a.openReadonly,
		Authenticated: ok, CSRF: csrfToken(w, r)}
	s.CanView = s.ViewsOpen || ok
	s.CanAct = !a.remote || ok
	return s
}

func (a *access) handleSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, a.sessionOf(w, r))
}

// handleLogin is POST /api/login {"token": "…"}: with the right token it
// sets the session cookie (HttpOnly, SameSite=Strict) for this browser.
func (a *access) handleLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if msg := crossSite(r); msg != "" {
		apiError(w, http.StatusForbidden, "%s", msg)
		return
	}
	if !csrfOK(r) {
		apiError(w, http.StatusForbidden, "missing or wrong CSRF token")
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
		apiError(w, http.StatusBadRequest, "login: want {\"token\": \"…\"}")
		return
	}
	if a.token == "" || !equal(strings.TrimSpace(body.Token), a.token) {
		a.log.Warn("console login with a wrong token", "remote", r.RemoteAddr)
		apiError(w, http.StatusUnauthorized, "wrong console token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: a.session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	a.log.Info("console login", "remote", r.RemoteAddr)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: a.session})
	writeJSON(w, a.sessionOf(w, r))
}

// handleLogout is POST /api/logout: it clears the session cookie.
func (a *access) handleLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// page wraps the page at /: security headers, no caching (it holds the
// CSRF token).
func (a *access) page(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// writeJSON answers v as indented JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError answers {"error": "…"} with code.
func apiError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}
