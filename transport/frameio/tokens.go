package frameio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// ErrNotPaired means no token file exists yet: run `edge-agent pair`.
var ErrNotPaired = errors.New("not paired with Frame.io; run `edge-agent pair`")

// ErrRepairNeeded means the refresh token was refused for good (forgotten,
// revoked, expired, or off for more than 14 days).
var ErrRepairNeeded = errors.New("Frame.io authorization is gone; re-pair with `edge-agent pair`")

// TokenFileName is the token file inside a link's state directory.
const TokenFileName = "tokens.json"

// TokenPath returns where the tokens of cfg live, given the link's state
// directory (state_dir/links/<name>).
func TokenPath(cfg *Config, stateDir string) string {
	if cfg.TokenFile != "" {
		return cfg.TokenFile
	}
	return filepath.Join(stateDir, TokenFileName)
}

// Tokens is the token file (0600).
type Tokens struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type,omitempty"`
	IssuedAt     time.Time `json:"issued_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

func tokensFrom(tr *tokenResponse, now time.Time) *Tokens {
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 8 * time.Hour // tokens last 8 h (docs/protocols/frameio-c2c.md §2.4)
	}
	return &Tokens{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: tr.TokenType,
		IssuedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()}
}

// SaveTokens writes t atomically with mode 0600 (fsync + rename), so a crash
// leaves the old tokens or the new ones, never neither.
func SaveTokens(path string, t *Tokens) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	return nil
}

// LoadTokens reads the token file; ErrNotPaired when it does not exist.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotPaired
	}
	if err != nil {
		return nil, fmt.Errorf("load tokens: %w", err)
	}
	var t Tokens
	if err := json.Unmarshal(b, &t); err != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("load tokens %s: damaged file; re-pair with `edge-agent pair`", path)
	}
	return &t, nil
}

// tokenSource hands out a valid access token to the socket and the upload
// worker. Refresh is single-flight: concurrent callers that saw the same
// stale token wait for one refresh. The rotated refresh token is written to
// disk before the new access token is used
// (docs/protocols/frameio-c2c.md §2.4). The file is re-read when it changes,
// so pairing while the daemon runs takes effect without a restart.
//
// Safe for concurrent use.
type tokenSource struct {
	path     string
	api      *api
	clientID string
	secret   string
	clk      clock.Clock
	log      *slog.Logger
	// refreshFraction of the lifetime after which a refresh is due (~80 %,
	// docs/protocols/frameio-c2c.md §2.4); jitter spreads a fleet.
	refreshFraction float64

	// secrets learns every token loaded or obtained, under slot/access and
	// slot/refresh, so an echo of one never reaches a log (nil: none).
	secrets *redact.Secrets
	slot    string

	flight sync.Mutex // serialises refreshes

	mu        sync.Mutex
	tok       *Tokens
	mod       time.Time // token file mtime when loaded
	dead      bool      // refresh refused for good until the file changes
	jitter    float64
	refreshes int
}

func newTokenSource(path string, a *api, clientID, secret string, clk clock.Clock, log *slog.Logger) *tokenSource {
	return &tokenSource{path: path, api: a, clientID: clientID, secret: secret, clk: clk, log: log,
		refreshFraction: 0.8, jitter: rand.Float64() * 0.05}
}

// current returns the loaded tokens, re-reading the file when it changed.
func (s *tokenSource) current() (*Tokens, error) {
	fi, err := os.Stat(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		s.tok = nil
		return nil, ErrNotPaired
	}
	if err == nil && (s.tok == nil || !fi.ModTime().Equal(s.mod)) {
		t, lerr := LoadTokens(s.path)
		if lerr != nil {
			return nil, lerr
		}
		s.tok, s.mod, s.dead = t, fi.ModTime(), false
		s.register(t)
	}
	if s.tok == nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	if s.dead {
		return nil, retry.Permanent(ErrRepairNeeded)
	}
	return s.tok, nil
}

// register adds t's tokens to the secrets kept out of logs.
func (s *tokenSource) register(t *Tokens) {
	s.secrets.Set(s.slot+"/access", t.AccessToken)
	s.secrets.Set(s.slot+"/refresh", t.RefreshToken)
}

// dueAt is when the proactive refresh of t is due.
func (s *tokenSource) dueAt(t *Tokens) time.Time {
	life := t.ExpiresAt.Sub(t.IssuedAt)
	if life <= 0 {
		return t.ExpiresAt
	}
	return t.IssuedAt.Add(time.Duration(float64(life) * (s.refreshFraction - s.jitter)))
}

// RefreshDue returns when the current token should be refreshed.
func (s *tokenSource) RefreshDue() (time.Time, bool) {
	t, err := s.current()
	if err != nil {
		return time.Time{}, false
	}
	return s.dueAt(t), true
}

// Access returns an access token, refreshing it first when it is due.
func (s *tokenSource) Access(ctx context.Context) (string, error) {
	t, err := s.current()
	if err != nil {
		return "", err
	}
	if !s.clk.Now().Before(s.dueAt(t)) {
		return s.Refresh(ctx, t.AccessToken)
	}
	return t.AccessToken, nil
}

// refreshTimeout bounds one token refresh, which runs to completion even
// when its caller gives up (see Refresh).
const refreshTimeout = 30 * time.Second

// Refresh replaces stale with a fresh access token. When another caller has
// already replaced it, the newer token is returned without a second refresh.
func (s *tokenSource) Refresh(ctx context.Context, stale string) (string, error) {
	s.flight.Lock()
	defer s.flight.Unlock()
	t, err := s.current()
	if err != nil {
		return "", err
	}
	if t.AccessToken != stale && s.clk.Now().Before(s.dueAt(t)) {
		return t.AccessToken, nil
	}
	// Refresh tokens rotate: once the service has answered, the token we
	// sent is dead, so a refresh cut short by the caller (a session ending
	// while it waits) would lose the only live one and force a re-pair.
	// It runs to its own bound instead of the caller's cancellation.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	tr, err := s.api.refresh(rctx, s.clientID, s.secret, t.RefreshToken)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && refreshRejected(ae) {
			// invalid_grant / invalid_client: the authorization is gone.
			s.mu.Lock()
			s.dead = true
			s.mu.Unlock()
			s.log.Error("token_refresh_failed; re-pair with `edge-agent pair`", "reason", ae.Code, "status", ae.Status)
			return "", retry.Permanent(fmt.Errorf("refresh token: %w: %w", ErrRepairNeeded, err))
		}
		s.log.Warn("token_refresh_failed; will retry", "err", err)
		if ae != nil && ae.Wait > 0 {
			return "", retry.RetryAfter(fmt.Errorf("refresh token: %w", err), ae.Wait)
		}
		return "", fmt.Errorf("refresh token: %w", err)
	}
	nt := tokensFrom(tr, s.clk.Now())
	if nt.RefreshToken == "" {
		nt.RefreshToken = t.RefreshToken // not rotated this time
	}
	s.register(nt)
	// Durable before use: a crash now must not strand us on a dead token.
	if err := SaveTokens(s.path, nt); err != nil {
		return "", err
	}
	fi, _ := os.Stat(s.path)
	s.mu.Lock()
	s.tok = nt
	if fi != nil {
		s.mod = fi.ModTime()
	}
	s.refreshes++
	s.mu.Unlock()
	s.log.Info("token_refreshed", "expires_at", nt.ExpiresAt.Format(time.RFC3339))
	return nt.AccessToken, nil
}
