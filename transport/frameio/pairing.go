package frameio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// PairState is the step a pairing is at.
type PairState string

// The steps of a pairing (docs/protocols/frameio-c2c.md §2.2–§2.3). Idle,
// Paired, Failed and Cancelled are final; the others mean a run is going.
const (
	PairIdle       PairState = "idle"       // no run yet (or unpaired since)
	PairRequesting PairState = "requesting" // asking Frame.io for a code
	PairWaiting    PairState = "waiting"    // the code is shown; polling for the user's approval
	PairSaving     PairState = "saving"     // approved: storing the tokens, reading the identity
	PairPaired     PairState = "paired"
	PairFailed     PairState = "failed"
	PairCancelled  PairState = "cancelled"
)

// Final reports whether s ends a run.
func (s PairState) Final() bool {
	switch s {
	case PairIdle, PairPaired, PairFailed, PairCancelled:
		return true
	}
	return false
}

// ErrPairingRunning is returned by Start while a run or an unpairing is
// going, and by Unpair then.
var ErrPairingRunning = errors.New("pairing already in progress")

// PairStatus is what a pairing shows its user: the terminal (edge-agent
// pair) and the web console render the same record. Every string from
// Frame.io in it has had control characters removed, secrets masked and its
// length bounded.
type PairStatus struct {
	State PairState `json:"state"`
	// DeviceName is our name for the board; FrameioName how Frame.io lists
	// the device.
	DeviceName  string `json:"device_name,omitempty"`
	FrameioName string `json:"frameio_name,omitempty"`
	// Code is the code the user enters in Frame.io, and VerificationURL
	// (VerificationURLComplete with the code filled in) where.
	Code                    string `json:"code,omitempty"`
	VerificationURL         string `json:"verification_url,omitempty"`
	VerificationURLComplete string `json:"verification_url_complete,omitempty"`
	// Expires is when the code expires; ExpiresIn is the seconds left when
	// Status was called (0 once expired or when no code is shown).
	Expires   time.Time `json:"expires,omitzero"`
	ExpiresIn int       `json:"expires_in"`
	// Codes counts the codes issued in this run (an expired one is renewed
	// on its own); Polls the approval polls of the current code.
	Codes int `json:"codes"`
	Polls int `json:"polls"`
	// Note is the latest remark for the user ("the code expired; here is a
	// new one", "Frame.io did not answer; still trying").
	Note string `json:"note,omitempty"`
	// The result: the project the device was added to and who authorized
	// it; IdentityError when the tokens were saved but the identity could
	// not be read. Error says why a run failed.
	Project       string `json:"project,omitempty"`
	AuthorizedBy  string `json:"authorized_by,omitempty"`
	DeviceID      string `json:"device_id,omitempty"`
	IdentityError string `json:"identity_error,omitempty"`
	Error         string `json:"error,omitempty"`
	// TokenPath is where the tokens are stored; Paired says whether a token
	// file is there now (from this run or an earlier pairing).
	TokenPath string    `json:"token_path"`
	Paired    bool      `json:"paired"`
	Started   time.Time `json:"started,omitzero"`
	Ended     time.Time `json:"ended,omitzero"`
}

// Pairing is the device-code pairing of one Frame.io link as a state
// machine: Start runs it in the background, Status shows where it is,
// Cancel stops it at any step; Unpair deauthorizes the device. `edge-agent
// pair` (through Pair) and the web console both drive it, so the flow, its
// limits and its output are one implementation.
//
// Concurrency: all methods are safe for concurrent use. A Pairing owns the
// goroutine Start starts; Cancel (or the end of Start's context) stops it,
// and Cancel and Wait wait for it. One run at a time.
type Pairing struct {
	cfg  Config
	opts PairOptions
	view *textView // PairOptions.Out's renderer; nil without Out

	mu        sync.Mutex
	st        PairStatus
	id        *Identity
	err       error
	unpairing bool // Unpair is talking to Frame.io: no run may start
	cancel    context.CancelFunc
	done      chan struct{} // closed when the current run ends; nil before the first
	changed   chan struct{} // closed and replaced at every change (Watch)
}

// NewPairing returns the pairing of the link configured by cfg. opts.Out,
// when set, receives the run's text output as `edge-agent pair` prints it.
func NewPairing(cfg Config, opts PairOptions) *Pairing {
	text := opts.Out != nil
	opts.defaults()
	p := &Pairing{cfg: cfg, opts: opts, changed: make(chan struct{}),
		st: PairStatus{State: PairIdle, DeviceName: opts.DeviceName, TokenPath: opts.TokenPath}}
	if text {
		p.view = &textView{o: &p.opts}
	}
	return p
}

// Start begins a run bounded by ctx and returns at once; ErrPairingRunning
// when one is going. A new run starts from a fresh status.
func (p *Pairing) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() {
		return fmt.Errorf("pair: %w", ErrPairingRunning)
	}
	rctx, cancel := context.WithCancel(ctx)
	p.cancel, p.done = cancel, make(chan struct{})
	p.id, p.err = nil, nil
	p.st = PairStatus{State: PairRequesting, DeviceName: p.opts.DeviceName, TokenPath: p.opts.TokenPath,
		Started: p.opts.Clock.Now()}
	p.notifyLocked()
	done := p.done
	go func() {
		defer close(done)
		defer cancel()
		id, err := p.run(rctx)
		p.finish(rctx, id, err)
	}()
	return nil
}

// Cancel stops the run at whatever step it is (no Frame.io call exists for
// that: the code simply goes unused, docs/protocols/frameio-c2c.md §2.3) and
// waits for it to end. Tokens already saved stay: the device is paired
// then. A no-op when no run is going.
func (p *Pairing) Cancel() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Wait blocks until the current run (if any) ends or ctx does, and returns
// the status then.
func (p *Pairing) Wait(ctx context.Context) (PairStatus, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return p.Status(), ctx.Err()
		}
	}
	return p.Status(), nil
}

// Result returns what the last run ended with: the device's identity (nil
// when it could not be read after pairing) or why it failed.
func (p *Pairing) Result() (*Identity, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id, p.err
}

// Status returns where the pairing is.
func (p *Pairing) Status() PairStatus {
	st, _ := p.Watch()
	return st
}

// Watch returns the status and a channel closed at its next change.
func (p *Pairing) Watch() (PairStatus, <-chan struct{}) {
	p.mu.Lock()
	st, ch := p.st, p.changed
	p.mu.Unlock()
	if st.State == PairWaiting && !st.Expires.IsZero() {
		st.ExpiresIn = max(int(st.Expires.Sub(p.opts.Clock.Now()).Round(time.Second)/time.Second), 0)
	}
	_, err := os.Stat(st.TokenPath)
	st.Paired = err == nil
	return st, ch
}

// Unpair deauthorizes the device at Frame.io and deletes the tokens (see
// Revoke); refused while a run is going. Out receives Revoke's line.
func (p *Pairing) Unpair(ctx context.Context) error {
	p.mu.Lock()
	if p.running() {
		p.mu.Unlock()
		return fmt.Errorf("unpair: %w", ErrPairingRunning)
	}
	p.unpairing = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.unpairing = false
		p.mu.Unlock()
	}()
	if err := Revoke(ctx, p.cfg, p.opts); err != nil {
		return err
	}
	p.update(func(st *PairStatus) {
		*st = PairStatus{State: PairIdle, DeviceName: p.opts.DeviceName, TokenPath: p.opts.TokenPath,
			Note: "unpaired: Frame.io no longer accepts this device's tokens, and they were deleted"}
	})
	return nil
}

// running reports whether a run or an unpairing is going. Caller holds mu.
func (p *Pairing) running() bool {
	return p.unpairing || (p.done != nil && !p.st.State.Final())
}

// update changes the status with f and tells the watchers and the text
// view. Only the run's goroutine and Unpair (never during a run) call it,
// so the view sees every change, in order.
func (p *Pairing) update(f func(*PairStatus)) {
	p.mu.Lock()
	f(&p.st)
	st := p.st
	p.notifyLocked()
	p.mu.Unlock()
	if p.view != nil {
		if st.State == PairWaiting {
			st.ExpiresIn = max(int(st.Expires.Sub(p.opts.Clock.Now()).Round(time.Second)/time.Second), 0)
		}
		p.view.show(st)
	}
}

func (p *Pairing) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// finish records how the run ended.
func (p *Pairing) finish(ctx context.Context, id *Identity, err error) {
	p.mu.Lock()
	saved := p.st.State == PairSaving
	p.mu.Unlock()
	switch {
	case err == nil || saved:
		// Saved tokens are a pairing, even when the run was cancelled
		// while it read the identity.
		err = nil
	case ctx.Err() != nil:
		err = fmt.Errorf("pair: cancelled: %w", ctx.Err())
	}
	p.mu.Lock()
	p.id, p.err = id, err
	p.mu.Unlock()
	now := p.opts.Clock.Now()
	p.update(func(st *PairStatus) {
		st.Ended = now
		switch {
		case err == nil:
			st.State = PairPaired
			st.Note = ""
			if id != nil {
				st.Project, st.AuthorizedBy, st.DeviceID = p.opts.shown(id.Project.Name), p.opts.shown(id.Authorization.Creator.Name), p.opts.shown(id.ID)
			}
		case ctx.Err() != nil:
			st.State, st.Error = PairCancelled, "pairing cancelled"
		default:
			st.State, st.Error = PairFailed, p.opts.Secrets.Err(err).Error()
		}
	})
}

// run is one pairing (docs/protocols/frameio-c2c.md §2.2–§2.3, §3.1): a
// code, polls at the server's interval (slow_down raises it by 5 s for
// good), an expired or refused code renewed up to MaxCodes, the tokens
// stored atomically 0600, then the device's identity. A nil identity with
// no error means the tokens were saved but the identity could not be read.
func (p *Pairing) run(ctx context.Context) (*Identity, error) {
	o := &p.opts
	a, err := newAPI(&p.cfg, o.Version, o.Clock)
	if err != nil {
		return nil, err
	}
	a.secrets = o.Secrets
	o.Secrets.Add(p.cfg.ClientSecret)
	for codes := 0; codes < o.MaxCodes; codes++ {
		p.update(func(st *PairStatus) { st.State = PairRequesting })
		dc, err := a.requestCode(ctx, p.cfg.ClientID, p.cfg.ClientSecret)
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && (ae.Code == "invalid_client" || ae.Status == 401 || ae.Status == 403) {
				return nil, fmt.Errorf("pair: Frame.io refused client_id/client_secret (%s); check the config", ae.Code)
			}
			return nil, fmt.Errorf("pair: %w", err)
		}
		o.Secrets.Set("frameio/pair/device_code", dc.DeviceCode)
		tr, err := p.poll(ctx, a, dc)
		if errors.Is(err, errCodeExpired) {
			continue
		}
		if err != nil {
			return nil, err
		}
		t := tokensFrom(tr, o.Clock.Now())
		o.Secrets.Set("frameio/pair/access", t.AccessToken)
		o.Secrets.Set("frameio/pair/refresh", t.RefreshToken)
		if err := SaveTokens(o.TokenPath, t); err != nil {
			return nil, fmt.Errorf("pair: %w", err)
		}
		p.update(func(st *PairStatus) { st.State, st.Note = PairSaving, "" })
		id, err := a.me(ctx, t.AccessToken)
		if err != nil {
			msg := o.Secrets.Err(err).Error()
			p.update(func(st *PairStatus) { st.IdentityError = msg })
			return nil, nil
		}
		return id, nil
	}
	return nil, fmt.Errorf("pair: gave up after %d codes; start pairing again", o.MaxCodes)
}

var errCodeExpired = errors.New("code expired")

// Bounds on the waits a device-code answer sets: a poll interval or a code
// lifetime of years (or one that overflows) must not park pairing.
const (
	maxPollInterval = time.Minute
	maxCodeLife     = 30 * time.Minute
)

// poll shows dc and polls until a token, a code expiry or refusal
// (errCodeExpired: a new code follows) or a failure.
func (p *Pairing) poll(ctx context.Context, a *api, dc *deviceCode) (*tokenResponse, error) {
	o := &p.opts
	clk := o.Clock
	interval := time.Duration(min(max(dc.Interval, 0), int(maxPollInterval/time.Second))) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second // docs/protocols/frameio-c2c.md §2.2: fall back to 5 s
	}
	life := time.Duration(min(max(dc.ExpiresIn, 0), int(maxCodeLife/time.Second))) * time.Second
	if life <= 0 {
		life = 120 * time.Second
	}
	deadline := clk.Now().Add(life)
	p.update(func(st *PairStatus) {
		st.State, st.Codes, st.Polls = PairWaiting, st.Codes+1, 0
		st.Code, st.FrameioName = o.shown(dc.UserCode), o.shown(dc.Name)
		st.VerificationURL, st.VerificationURLComplete = o.shown(dc.VerificationURI), o.shown(dc.VerificationURIComplete)
		st.Expires = deadline
	})
	note := func(s string) { p.update(func(st *PairStatus) { st.Note = s }) }
	warned := false
	for {
		left := deadline.Sub(clk.Now())
		if left <= 0 {
			note("The code expired; here is a new one.")
			return nil, errCodeExpired
		}
		if err := clk.Sleep(ctx, min(interval, left)); err != nil {
			return nil, fmt.Errorf("pair: cancelled: %w", err)
		}
		tr, err := a.pollToken(ctx, p.cfg.ClientID, p.cfg.ClientSecret, dc.DeviceCode)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pair: cancelled: %w", ctx.Err())
		}
		p.update(func(st *PairStatus) { st.Polls++ })
		if err == nil {
			return tr, nil
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status >= 500 || ae.Status == 429 {
			// Network or server trouble: keep the code while it lasts.
			if !warned {
				warned = true
				note(fmt.Sprintf("Frame.io did not answer (%v); still trying", o.Secrets.Err(err)))
			}
			continue
		}
		if warned {
			warned = false
			note("")
		}
		switch ae.Code {
		case "authorization_pending":
		case "slow_down":
			interval = min(interval+5*time.Second, maxPollInterval)
		case "expired_token":
			note("The code expired; here is a new one.")
			return nil, errCodeExpired
		case "invalid_grant":
			// Refused or already used: a fresh code restarts pairing.
			note("Frame.io refused the code (invalid_grant); here is a new one.")
			return nil, errCodeExpired
		case "invalid_client":
			return nil, fmt.Errorf("pair: Frame.io refused client_id/client_secret (invalid_client); check the config")
		default:
			return nil, fmt.Errorf("pair: %w", err)
		}
	}
}
