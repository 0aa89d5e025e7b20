package frameio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/redact"
)

// PairOptions configures Pair and Revoke.
type PairOptions struct {
	// TokenPath is where the tokens are stored (see TokenPath).
	TokenPath string
	// DeviceName is our name for the board, shown next to Frame.io's.
	DeviceName string
	// Version is sent as x-client-version.
	Version string
	// Out receives the user-facing text (code, countdown, result).
	Out io.Writer
	// Terminal redraws the countdown in place; otherwise a line is printed
	// every CountdownEvery.
	Terminal       bool
	CountdownEvery time.Duration
	// Clock paces polling; nil is the real clock.
	Clock clock.Clock
	// MaxCodes bounds how many codes are issued before giving up (0: 10), so
	// a board left alone does not poll forever.
	MaxCodes int
	// Secrets are masked in everything the server says; the client secret,
	// the device code and the tokens obtained are added to it. Nil makes a
	// new set.
	Secrets *redact.Secrets
}

func (o *PairOptions) defaults() {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.CountdownEvery <= 0 {
		o.CountdownEvery = 30 * time.Second
	}
	if o.MaxCodes <= 0 {
		o.MaxCodes = 10
	}
	if o.Secrets == nil {
		o.Secrets = redact.New()
	}
}

// maxShown bounds a server string printed to the terminal (a URL fits).
const maxShown = 256

// shown makes a server-supplied string safe to print on a terminal: escape
// sequences (which can set the window title, clear the screen or rewrite
// earlier lines) and every other control character are removed, secrets
// masked and the length bounded.
func (o *PairOptions) shown(s string) string { return o.Secrets.Peer(s, maxShown) }

// Pair runs the device-code grant (docs/protocols/frameio-c2c.md §2.2–§2.3):
// it shows the code with a countdown, polls at the server's interval
// (slow_down raises it by 5 s for good), renews an expired code
// automatically, stores the tokens atomically 0600 and returns the device's
// identity (docs/protocols/frameio-c2c.md §3.1). Cancelling ctx cancels
// pairing; no server call exists for that
// (docs/protocols/frameio-c2c.md §2.3).
func Pair(ctx context.Context, cfg Config, opts PairOptions) (*Identity, error) {
	opts.defaults()
	a, err := newAPI(&cfg, opts.Version, opts.Clock)
	if err != nil {
		return nil, err
	}
	a.secrets = opts.Secrets
	opts.Secrets.Add(cfg.ClientSecret)
	out := opts.Out
	for codes := 0; codes < opts.MaxCodes; codes++ {
		dc, err := a.requestCode(ctx, cfg.ClientID, cfg.ClientSecret)
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && (ae.Code == "invalid_client" || ae.Status == 401 || ae.Status == 403) {
				return nil, fmt.Errorf("pair: Frame.io refused client_id/client_secret (%s); check the config", ae.Code)
			}
			return nil, fmt.Errorf("pair: %w", err)
		}
		opts.Secrets.Set("frameio/pair/device_code", dc.DeviceCode)
		tr, err := pollCode(ctx, a, &cfg, dc, &opts)
		if errors.Is(err, errCodeExpired) {
			fmt.Fprintln(out, "\nThe code expired; here is a new one.")
			continue
		}
		if err != nil {
			return nil, err
		}
		t := tokensFrom(tr, opts.Clock.Now())
		opts.Secrets.Set("frameio/pair/access", t.AccessToken)
		opts.Secrets.Set("frameio/pair/refresh", t.RefreshToken)
		if err := SaveTokens(opts.TokenPath, t); err != nil {
			return nil, fmt.Errorf("pair: %w", err)
		}
		id, err := a.me(ctx, t.AccessToken)
		if err != nil {
			fmt.Fprintf(out, "\nPaired (tokens saved), but reading the device identity failed: %v\n", opts.Secrets.Err(err))
			return nil, nil
		}
		fmt.Fprintf(out, "\nPaired: project %q, authorized by %s. Tokens saved to %s.\n",
			opts.shown(id.Project.Name), opts.shown(id.Authorization.Creator.Name), opts.TokenPath)
		return id, nil
	}
	return nil, fmt.Errorf("pair: gave up after %d codes; run `edge-agent pair` again", opts.MaxCodes)
}

var errCodeExpired = errors.New("code expired")

// Bounds on the waits a device-code answer sets: a poll interval or a code
// lifetime of years (or one that overflows) must not park pairing.
const (
	maxPollInterval = time.Minute
	maxCodeLife     = 30 * time.Minute
)

// pollCode shows dc and polls until a token, a code expiry (errCodeExpired)
// or a failure.
func pollCode(ctx context.Context, a *api, cfg *Config, dc *deviceCode, o *PairOptions) (*tokenResponse, error) {
	out, clk := o.Out, o.Clock
	interval := time.Duration(min(max(dc.Interval, 0), int(maxPollInterval/time.Second))) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second // docs/protocols/frameio-c2c.md §2.2: fall back to 5 s
	}
	life := time.Duration(min(max(dc.ExpiresIn, 0), int(maxCodeLife/time.Second))) * time.Second
	if life <= 0 {
		life = 120 * time.Second
	}
	deadline := clk.Now().Add(life)
	code := o.shown(dc.UserCode)
	fmt.Fprintf(out, "Device:  %s (Frame.io shows it as %q)\n", o.DeviceName, o.shown(dc.Name))
	fmt.Fprintf(out, "Code:    %s\n", code)
	if dc.VerificationURIComplete != "" {
		fmt.Fprintf(out, "Open:    %s\n", o.shown(dc.VerificationURIComplete))
	} else if dc.VerificationURI != "" {
		fmt.Fprintf(out, "Open:    %s\n", o.shown(dc.VerificationURI))
	}
	fmt.Fprintln(out, "Enter the code in Frame.io: project > C2C Connections > New C2C Connection. Ctrl-C cancels.")
	lastLine := clk.Now()
	warned := false
	for {
		left := deadline.Sub(clk.Now())
		if left <= 0 {
			return nil, errCodeExpired
		}
		switch {
		case o.Terminal:
			fmt.Fprintf(out, "\r  code %s expires in %3ds ", code, int(left.Round(time.Second)/time.Second))
		case clk.Now().Sub(lastLine) >= o.CountdownEvery:
			lastLine = clk.Now()
			fmt.Fprintf(out, "  code %s expires in %ds\n", code, int(left.Round(time.Second)/time.Second))
		}
		if err := clk.Sleep(ctx, min(interval, left)); err != nil {
			fmt.Fprintln(out, "\nPairing cancelled.")
			return nil, fmt.Errorf("pair: cancelled: %w", err)
		}
		tr, err := a.pollToken(ctx, cfg.ClientID, cfg.ClientSecret, dc.DeviceCode)
		if err == nil {
			return tr, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pair: cancelled: %w", ctx.Err())
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status >= 500 || ae.Status == 429 {
			// Network or server trouble: keep the code while it lasts.
			if !warned {
				warned = true
				fmt.Fprintf(out, "\n  Frame.io did not answer (%v); still trying\n", o.Secrets.Err(err))
			}
			continue
		}
		switch ae.Code {
		case "authorization_pending":
		case "slow_down":
			interval = min(interval+5*time.Second, maxPollInterval)
		case "expired_token":
			return nil, errCodeExpired
		case "invalid_grant":
			// Refused or already used: a fresh code restarts pairing.
			fmt.Fprintln(out, "\nFrame.io refused the code (invalid_grant).")
			return nil, errCodeExpired
		case "invalid_client":
			return nil, fmt.Errorf("pair: Frame.io refused client_id/client_secret (invalid_client); check the config")
		default:
			return nil, fmt.Errorf("pair: %w", err)
		}
	}
}

// Revoke deauthorizes the device (docs/protocols/frameio-c2c.md §2.5) and
// deletes the local tokens. When Frame.io cannot be reached the tokens are
// kept and the error returned, so the user can try again.
func Revoke(ctx context.Context, cfg Config, opts PairOptions) error {
	opts.defaults()
	t, err := LoadTokens(opts.TokenPath)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	a, err := newAPI(&cfg, opts.Version, opts.Clock)
	if err != nil {
		return err
	}
	a.secrets = opts.Secrets
	opts.Secrets.Add(cfg.ClientSecret, t.AccessToken, t.RefreshToken)
	err = a.revoke(ctx, cfg.ClientID, cfg.ClientSecret, t.RefreshToken)
	var ae *APIError
	if err != nil && !(errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != 429) {
		return err // unreachable or 5xx: keep the tokens for another try
	}
	if rerr := removeFile(opts.TokenPath); rerr != nil {
		return fmt.Errorf("revoke: %w", rerr)
	}
	if err != nil {
		fmt.Fprintf(opts.Out, "Frame.io no longer knew the token (%s); local tokens deleted.\n", ae.Code)
		return nil
	}
	fmt.Fprintln(opts.Out, "Deauthorized; local tokens deleted.")
	return nil
}
