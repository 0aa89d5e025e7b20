package rtm

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// errTokenRejected marks a 401/403 from the service (REST session or
// WebSocket upgrade): the link renews its token and dials once more.
var errTokenRejected = errors.New("token rejected")

// tokenSource hands out the Bearer token for the next session and renews it
// before it expires and whenever the service rejects it (the master key never
// goes on a device; our backend mints the token: docs/protocols/webrtc-rtm.md
// §2.1). By config:
//
//   - token_url: POST {client_id} with the device key to our backend, which
//     answers {"auth_token": JWT} like the service's /auth_v2/client. Renewed
//     when the JWT is within token_refresh_before of its exp, and on a 401.
//     The backend refusing the device key (401/403) is retried, never final
//     (token_url_key_file is read again then).
//   - token_file: re-read before every session and after a 401, so that a
//     helper outside the agent can keep the file fresh.
//   - token: inline and static; a 401 is permanent.
//
// A token is only presented when a session is set up, so renewing it never
// interrupts a running stream.
//
// Concurrency: safe for concurrent use (in practice the supervisor's dialing
// goroutine is the only caller).
type tokenSource struct {
	cfg *Config
	tc  *tls.Config
	log *slog.Logger
	now func() time.Time
	// waits caps a Retry-After from token_url (nil: capped, not logged).
	waits *retry.PeerWaits
	// secrets learns every token read or fetched, under slot, so an echo
	// of one never reaches a log (nil: none).
	secrets *redact.Secrets
	slot    string

	mu       sync.Mutex
	tok      string
	iat, exp time.Time // from the JWT's claims; zero when unknown
	// key is the device key for token_url: token_url_key, or what
	// token_url_key_file held when last read (re-read after a refusal).
	key string
}

func newTokenSource(cfg *Config, log *slog.Logger, now func() time.Time) *tokenSource {
	return &tokenSource{cfg: cfg, log: log, now: now, tok: cfg.Token, key: cfg.TokenURLKey}
}

// current returns the token for the next session, renewing it first when it
// is due. A renewal that fails while the old token is still valid is logged
// and the old token used.
func (t *tokenSource) current(ctx context.Context, tc *tls.Config) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.cfg.TokenURL != "":
		if t.tok != "" && !t.dueLocked() {
			return t.tok, nil
		}
		err := t.fetchLocked(ctx, tc)
		if err == nil {
			return t.tok, nil
		}
		if t.tok != "" && (t.exp.IsZero() || t.now().Before(t.exp)) {
			t.log.Warn("rtm token renewal failed; using the current token until it expires", "err", err, "expires", t.exp)
			return t.tok, nil
		}
		return "", err
	case t.cfg.TokenFile != "":
		if err := t.readFileLocked(); err != nil {
			if t.tok == "" {
				return "", err
			}
			t.log.Warn("rtm token_file unreadable; using the token read before", "err", err)
		}
		if !t.exp.IsZero() && !t.now().Before(t.exp) {
			// Presented anyway: the service judges, and the board's clock
			// may be the one that is wrong.
			t.log.Warn("rtm token in token_file has expired; is the helper that renews it running?",
				"file", t.cfg.TokenFile, "expired", t.exp)
		}
	}
	return t.tok, nil
}

// renew is told the service rejected rejected. It returns a different token
// to dial with at once, or the error for the supervisor: permanent for an
// inline token, retried with backoff otherwise (the backend or the helper
// writing token_file may catch up).
func (t *tokenSource) renew(ctx context.Context, tc *tls.Config, rejected string, cause error) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.cfg.TokenURL != "":
		if err := t.fetchLocked(ctx, tc); err != nil {
			return "", fmt.Errorf("%w; renewing it: %w", cause, err)
		}
		if t.tok == rejected {
			return "", fmt.Errorf("%w; token_url handed out the same token again", cause)
		}
	case t.cfg.TokenFile != "":
		if err := t.readFileLocked(); err != nil {
			return "", fmt.Errorf("%w; re-reading it: %w", cause, err)
		}
		if t.tok == rejected {
			return "", fmt.Errorf("%w; waiting for a new one in %s", cause, t.cfg.TokenFile)
		}
	default:
		return "", retry.Permanent(fmt.Errorf("%w (inline token; use token_file or token_url to renew it)", cause))
	}
	t.log.Info("rtm token renewed after a rejection", "expires", t.exp)
	return t.tok, nil
}

// dueLocked reports whether the token is within the refresh window of its
// expiry. The window is token_refresh_before, at most half the token's
// lifetime (so short-lived tokens are not renewed on every session).
func (t *tokenSource) dueLocked() bool {
	if t.exp.IsZero() {
		return false
	}
	before := t.cfg.TokenRefreshBefore.D()
	if !t.iat.IsZero() {
		if half := t.exp.Sub(t.iat) / 2; half < before {
			before = half
		}
	}
	return !t.now().Before(t.exp.Add(-before))
}

func (t *tokenSource) readFileLocked() error {
	b, err := os.ReadFile(t.cfg.TokenFile)
	if err != nil {
		return fmt.Errorf("rtm token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if err := checkToken(tok); err != nil {
		return fmt.Errorf("rtm token_file %s: %w", t.cfg.TokenFile, err)
	}
	if tok != t.tok {
		t.setLocked(tok)
	}
	return nil
}

// tokenReply is the backend's answer, shaped like the service's
// POST /auth_v2/client reply.
type tokenReply struct {
	AuthToken string `json:"auth_token"`
}

// fetchLocked asks token_url for a new token.
func (t *tokenSource) fetchLocked(ctx context.Context, tc *tls.Config) error {
	var r tokenReply
	err := postClientID(ctx, tc, "rtm token_url", t.cfg.TokenURL, t.key, t.cfg.ClientID, func(resp *http.Response) error {
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return t.keyRefusedLocked(resp.StatusCode)
		case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated:
			err := fmt.Errorf("rtm token_url: HTTP %d", resp.StatusCode)
			if d, ok := t.waits.Header(resp.Header, t.now()); ok {
				return retry.RetryAfter(err, d)
			}
			return err
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&r); err != nil {
			return fmt.Errorf("rtm token_url: %w: %v", ErrBadMessage, err)
		}
		if err := checkToken(r.AuthToken); err != nil {
			return fmt.Errorf("rtm token_url: %w: auth_token %v", ErrBadMessage, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.setLocked(r.AuthToken)
	if !t.exp.IsZero() && !t.now().Before(t.exp) {
		return fmt.Errorf("rtm token_url: the new token expired at %s (is this board's clock right?)", t.exp.Format(time.RFC3339))
	}
	t.log.Info("rtm token renewed", "source", "token_url", "expires", t.exp)
	return nil
}

// keyRefusedLocked is token_url answering 401/403. That is not final: our
// backend, or a proxy or a deploy in front of it, may answer so for
// minutes, and the key may have been rotated in token_url_key_file, which
// is read again here for the next try. The error is retried with the
// supervisor's backoff and says what to check; the key never appears in it.
func (t *tokenSource) keyRefusedLocked(status int) error {
	err := fmt.Errorf("rtm token_url: HTTP %d (device key rejected; check token_url_key_file); retrying", status)
	if t.cfg.TokenURLKeyFile == "" {
		return err
	}
	b, rerr := os.ReadFile(t.cfg.TokenURLKeyFile)
	if rerr != nil {
		return fmt.Errorf("%w; re-reading the key: %w", err, rerr)
	}
	key := strings.TrimSpace(string(b))
	if key == "" || key == t.key {
		return err
	}
	t.key = key
	t.secrets.Add(key)
	t.log.Info("rtm device key changed in token_url_key_file; using it from the next try")
	return fmt.Errorf("%w; a new key was read from the file", err)
}

func (t *tokenSource) setLocked(tok string) {
	t.secrets.Set(t.slot, tok)
	t.tok = tok
	t.iat, t.exp = jwtTimes(tok)
}

// checkToken refuses what cannot go in an Authorization header.
func checkToken(tok string) error {
	if tok == "" {
		return errors.New("empty")
	}
	for _, c := range tok {
		if c <= ' ' || c == 0x7f || c > '~' {
			return errors.New("contains white space or control characters")
		}
	}
	return nil
}

// jwtTimes reads iat and exp from a JWT's claims without verifying it (the
// device cannot: the service signs it). Anything else gives zero times: the
// token is then renewed only when rejected.
func jwtTimes(tok string) (iat, exp time.Time) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return
	}
	var c struct {
		IAT json.Number `json:"iat"`
		EXP json.Number `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return
	}
	seconds := func(n json.Number) time.Time {
		f, err := n.Float64()
		if err != nil || f <= 0 || f > 1<<40 {
			return time.Time{}
		}
		sec := math.Floor(f)
		return time.Unix(int64(sec), int64((f-sec)*1e9))
	}
	return seconds(c.IAT), seconds(c.EXP)
}
