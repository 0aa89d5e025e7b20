package rtm

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// jwt builds an unsigned-looking JWT with the given claims JSON.
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(claims)) + ".c2ln"
}

func TestJWTTimes(t *testing.T) {
	tests := []struct {
		name     string
		tok      string
		iat, exp int64 // unix seconds; 0 = unknown
	}{
		{"claims", jwt(`{"iat":1700000000,"exp":1700086400}`), 1700000000, 1700086400},
		{"fractional", jwt(`{"exp":1700000000.5}`), 0, 1700000000},
		{"no exp", jwt(`{"sub":"x"}`), 0, 0},
		{"opaque token", "e2e-rtm-token-0123456789", 0, 0},
		{"bad base64", "a.!!!.c", 0, 0},
		{"bad json", jwt(`{"exp":`), 0, 0},
		{"exp a string", jwt(`{"exp":"soon"}`), 0, 0},
		{"exp absurd", jwt(`{"exp":1e300}`), 0, 0},
		{"exp negative", jwt(`{"exp":-5}`), 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iat, exp := jwtTimes(tc.tok)
			unix := func(x time.Time) int64 {
				if x.IsZero() {
					return 0
				}
				return x.Unix()
			}
			if unix(iat) != tc.iat || unix(exp) != tc.exp {
				t.Errorf("jwtTimes = %d, %d; want %d, %d", unix(iat), unix(exp), tc.iat, tc.exp)
			}
		})
	}
}

// backend is a scripted token_url: each request takes the next reply.
type backend struct {
	srv     *httptest.Server
	replies []func(w http.ResponseWriter)
	n       atomic.Int32
}

func newBackend(t *testing.T, replies ...func(w http.ResponseWriter)) *backend {
	b := &backend{replies: replies}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer device-key" || r.Method != http.MethodPost {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		i := int(b.n.Add(1)) - 1
		b.replies[min(i, len(b.replies)-1)](w)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func reply(code int, body string, hdr ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

func tokenReplyFor(tok string) func(w http.ResponseWriter) {
	return reply(http.StatusCreated, `{"auth_token":"`+tok+`"}`)
}

func TestTokenURLReplies(t *testing.T) {
	now := time.Unix(1700000000, 0)
	valid := jwt(`{"iat":1700000000,"exp":1700003600}`)
	tests := []struct {
		name      string
		reply     func(w http.ResponseWriter)
		permanent bool
		after     time.Duration // Retry-After honoured
		is        error
		say       string
	}{
		{name: "ok", reply: tokenReplyFor(valid)},
		{name: "ok 200 opaque", reply: reply(http.StatusOK, `{"auth_token":"opaque-token"}`)},
		{name: "server error", reply: reply(http.StatusInternalServerError, "boom"), say: "HTTP 500"},
		{name: "busy", reply: reply(http.StatusServiceUnavailable, "", "Retry-After", "7"), after: 7 * time.Second},
		{name: "key refused", reply: reply(http.StatusForbidden, ""), say: "device key rejected"},
		{name: "key refused 401", reply: reply(http.StatusUnauthorized, "<html>401</html>"), say: "device key rejected"},
		{name: "not json", reply: reply(http.StatusCreated, "<html>"), is: ErrBadMessage},
		{name: "no token", reply: reply(http.StatusCreated, `{"token":"x"}`), is: ErrBadMessage, say: "empty"},
		{name: "header injection", reply: reply(http.StatusCreated, `{"auth_token":"a\r\nX-Evil: 1"}`), is: ErrBadMessage},
		{name: "already expired", reply: tokenReplyFor(jwt(`{"exp":1690000000}`)), say: "clock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, tc.reply)
			cfg := &Config{TokenURL: b.srv.URL, TokenURLKey: "device-key", ClientID: "d1"}
			ts := newTokenSource(cfg, slog.New(slog.DiscardHandler), func() time.Time { return now })
			tok, err := ts.current(t.Context(), nil)
			wantErr := tc.permanent || tc.after > 0 || tc.is != nil || tc.say != ""
			if (err != nil) != wantErr {
				t.Fatalf("current = %q, %v; want error %v", tok, err, wantErr)
			}
			if err == nil {
				return
			}
			if retry.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", retry.IsPermanent(err), tc.permanent, err)
			}
			if d, ok := retry.After(err); tc.after > 0 && (!ok || d != tc.after) {
				t.Errorf("retry after = %v %v, want %v", d, ok, tc.after)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.say) || strings.Contains(err.Error(), "device-key") {
				t.Errorf("err = %v, want it to say %q and not the key", err, tc.say)
			}
		})
	}
}

// TestTokenRenewalFallsBack: a renewal that fails keeps the old token while
// it is valid, and only then becomes an error.
func TestTokenRenewalFallsBack(t *testing.T) {
	first := jwt(`{"iat":1700000000,"exp":1700003600}`) // 1 h
	b := newBackend(t, tokenReplyFor(first), reply(http.StatusBadGateway, ""))
	now := time.Unix(1700000000, 0)
	cfg := &Config{TokenURL: b.srv.URL, TokenURLKey: "device-key", ClientID: "d1", TokenRefreshBefore: conf.Duration(5 * time.Minute)}
	ts := newTokenSource(cfg, slog.New(slog.DiscardHandler), func() time.Time { return now })
	for _, step := range []struct {
		at      time.Duration // since iat
		fetches int32
		ok      bool
	}{
		{0, 1, true},                   // first fetch
		{50 * time.Minute, 1, true},    // not due yet: no request
		{56 * time.Minute, 2, true},    // due (5 min before exp), 502: the old one is still good
		{59 * time.Minute, 3, true},    // due, 502 again
		{60*time.Minute + 1, 4, false}, // expired and no new one
		{61 * time.Minute, 5, false},
	} {
		now = time.Unix(1700000000, 0).Add(step.at)
		tok, err := ts.current(t.Context(), nil)
		if (err == nil) != step.ok || (step.ok && tok != first) {
			t.Errorf("at +%v: current = %q, %v; want ok %v", step.at, tok, err, step.ok)
		}
		if got := b.n.Load(); got != step.fetches {
			t.Errorf("at +%v: %d requests, want %d", step.at, got, step.fetches)
		}
	}
}

// TestTokenFileSource: re-read per call; an unreadable or empty file falls
// back to the last good token (an error only when there is none); an expired
// JWT is presented but warned about; a rejected token is renewed only when
// the file changed.
func TestTokenFileSource(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/token"
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var logs strings.Builder
	now := time.Unix(1700000000, 0)
	ts := newTokenSource(&Config{TokenFile: path}, slog.New(slog.NewTextHandler(&logs, nil)), func() time.Time { return now })
	if _, err := ts.current(t.Context(), nil); err == nil {
		t.Fatal("no file and no token before: want an error")
	}
	write(" first-token\n")
	if tok, err := ts.current(t.Context(), nil); err != nil || tok != "first-token" {
		t.Fatalf("current = %q, %v", tok, err)
	}
	write("")
	if tok, err := ts.current(t.Context(), nil); err != nil || tok != "first-token" {
		t.Errorf("empty file: current = %q, %v; want the last good token", tok, err)
	}
	if _, err := ts.renew(t.Context(), nil, "first-token", errTokenRejected); err == nil {
		t.Error("renew with an empty file succeeded")
	}
	write("first-token")
	if _, err := ts.renew(t.Context(), nil, "first-token", errTokenRejected); err == nil || retry.IsPermanent(err) ||
		!strings.Contains(err.Error(), "waiting for a new one in "+path) {
		t.Errorf("renew with the same token = %v", err)
	}
	expired := jwt(`{"exp":1690000000}`)
	write(expired)
	if tok, err := ts.renew(t.Context(), nil, "first-token", errTokenRejected); err != nil || tok != expired {
		t.Errorf("renew with a new token = %q, %v", tok, err)
	}
	if tok, err := ts.current(t.Context(), nil); err != nil || tok != expired || !strings.Contains(logs.String(), "has expired") {
		t.Errorf("expired JWT in the file: %q, %v; log %q", tok, err, logs.String())
	}
	if strings.Contains(logs.String(), "first-token") || strings.Contains(logs.String(), expired) {
		t.Error("a token reached the log")
	}
}
