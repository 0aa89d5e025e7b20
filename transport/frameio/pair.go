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

// PairOptions configures a Pairing, Pair and Revoke.
type PairOptions struct {
	// TokenPath is where the tokens are stored (see TokenPath).
	TokenPath string
	// DeviceName is our name for the board, shown next to Frame.io's.
	DeviceName string
	// Version is sent as x-client-version.
	Version string
	// Out receives the user-facing text (code, countdown, result) as
	// `edge-agent pair` prints it; nil prints nothing (the web console shows
	// Pairing.Status instead).
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

// Pair runs one pairing (see Pairing.run) to its end, printing it to
// opts.Out as `edge-agent pair` shows it: the code with a countdown, the
// renewals, the result. It returns the device's identity (nil with no error
// when the tokens were saved but the identity could not be read).
// Cancelling ctx cancels pairing; no server call exists for that
// (docs/protocols/frameio-c2c.md §2.3).
func Pair(ctx context.Context, cfg Config, opts PairOptions) (*Identity, error) {
	p := NewPairing(cfg, opts)
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	_, _ = p.Wait(context.WithoutCancel(ctx)) // the run itself ends with ctx
	return p.Result()
}

// textView prints a pairing's changes as `edge-agent pair` shows them.
// Pairing calls show from one goroutine at a time, in order.
type textView struct {
	o        *PairOptions
	codes    int // codes printed
	note     string
	lastLine time.Time
}

func (v *textView) show(st PairStatus) {
	out, now := v.o.Out, v.o.Clock.Now()
	if st.Note != v.note {
		v.note = st.Note
		if st.Note != "" {
			fmt.Fprintf(out, "\n%s\n", st.Note)
		}
	}
	switch st.State {
	case PairWaiting:
		if st.Codes > v.codes {
			v.codes, v.lastLine = st.Codes, now
			fmt.Fprintf(out, "Device:  %s (Frame.io shows it as %q)\n", st.DeviceName, st.FrameioName)
			fmt.Fprintf(out, "Code:    %s\n", st.Code)
			if st.VerificationURLComplete != "" {
				fmt.Fprintf(out, "Open:    %s\n", st.VerificationURLComplete)
			} else if st.VerificationURL != "" {
				fmt.Fprintf(out, "Open:    %s\n", st.VerificationURL)
			}
			fmt.Fprintln(out, "Enter the code in Frame.io: project > C2C Connections > New C2C Connection. Ctrl-C cancels.")
		}
		switch {
		case v.o.Terminal:
			fmt.Fprintf(out, "\r  code %s expires in %3ds ", st.Code, st.ExpiresIn)
		case now.Sub(v.lastLine) >= v.o.CountdownEvery:
			v.lastLine = now
			fmt.Fprintf(out, "  code %s expires in %ds\n", st.Code, st.ExpiresIn)
		}
	case PairPaired:
		switch {
		case st.IdentityError != "":
			fmt.Fprintf(out, "\nPaired (tokens saved), but reading the device identity failed: %s\n", st.IdentityError)
		case st.Project != "" || st.AuthorizedBy != "":
			fmt.Fprintf(out, "\nPaired: project %q, authorized by %s. Tokens saved to %s.\n", st.Project, st.AuthorizedBy, st.TokenPath)
		}
	case PairCancelled:
		fmt.Fprintln(out, "\nPairing cancelled.")
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
