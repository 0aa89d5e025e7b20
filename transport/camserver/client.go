package camserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/httpx"
	"github.com/edge-agent/edge-agent/internal/redact"
)

// Limits are the account limits that shape our request pattern, derived from
// getConfig.json (clamp(fv, miv, mav), docs/protocols/camera-server.md §5.2).
type Limits struct {
	DeadSession    time.Duration // kind 2: idle sessions are deleted after this
	MaxRequests    int           // kind 3: a session is deleted past this many requests
	RequestsPerMin int           // kind 4: a session is deleted past this many per minute
}

// DefaultLimits are the server defaults, used until getConfig answers.
var DefaultLimits = Limits{DeadSession: 10 * time.Minute, MaxRequests: 1500, RequestsPerMin: 50}

func limitsFrom(entries []ConfigEntry) Limits {
	l := DefaultLimits
	for _, e := range entries {
		v := e.Clamped()
		switch e.Kind {
		case 2:
			l.DeadSession = time.Duration(v * float64(time.Minute))
		case 3:
			l.MaxRequests = int(v)
		case 4:
			l.RequestsPerMin = int(v)
		}
	}
	return l
}

// Client speaks the JSON API on one HTTP/2 connection. It owns the session
// id: a NO_SUCH_SESSION answer makes it authorize again and replay the request
// once. Every counted request first takes a token from a bucket sized to a
// fraction of the per-minute limit, and once a session has used 90 % of its
// total budget the next request starts a new session, so the server's limits
// (which delete the session without warning) are never reached.
//
// Concurrency: all methods are safe for concurrent use.
type Client struct {
	base   *url.URL
	hc     *http.Client
	user   string
	pass   string
	device string
	meta   string
	budget float64 // fraction of the per-minute limit we use
	clk    clock.Clock
	// secrets learns each shash (nil: none).
	secrets *redact.Secrets

	authMu  sync.Mutex // serialises authorize
	mu      sync.Mutex
	shash   string
	gen     uint64        // incremented by each authorize
	authCh  chan struct{} // closed and replaced at each authorize
	limits  Limits
	used    int // counted requests on this session
	lastOK  time.Time
	limiter *rate.Limiter

	requests atomic.Int64
}

// ClientOptions configures a Client.
type ClientOptions struct {
	User, Password, Device, Meta string
	// Budget is the fraction of the server's per-minute limit the client
	// allows itself; 0 means 0.6.
	Budget float64
	// Clock paces the request budget and stamps LastOK (the heartbeat's
	// reference); nil is the wall clock.
	Clock clock.Clock
	// Secrets learns each session id (shash: it authenticates every
	// request) so an echo of it never reaches a log; nil learns nothing.
	Secrets *redact.Secrets
}

// NewClient returns a client for base using rt (an HTTP/2 transport). It
// follows the redirect policy of every link (internal/httpx): the JSON
// POSTs (the password at authorize, the session id in every query) are
// never redirected; a 3xx is a transient error naming the status and the
// target origin.
func NewClient(base *url.URL, rt http.RoundTripper, o ClientOptions) *Client {
	if o.Budget <= 0 {
		o.Budget = 0.6
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	c := &Client{base: base, hc: httpx.NewClient(rt), user: o.User, pass: o.Password,
		device: o.Device, meta: o.Meta, budget: o.Budget, clk: o.Clock, authCh: make(chan struct{}), secrets: o.Secrets}
	o.Secrets.Add(o.Password)
	c.setLimitsLocked(DefaultLimits)
	return c
}

func (c *Client) setLimitsLocked(l Limits) {
	c.limits = l
	per := float64(l.RequestsPerMin) * c.budget / 60
	c.limiter = rate.NewLimiter(rate.Limit(per), max(1, int(float64(l.RequestsPerMin)*c.budget/10)))
}

// Shash returns the current session id and its generation.
func (c *Client) Shash() (string, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shash, c.gen
}

// AuthChanged returns a channel closed at the next authorize.
func (c *Client) AuthChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.authCh
}

// Limits returns the limits in force.
func (c *Client) Limits() Limits {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limits
}

// spacing returns the least interval between requests that keeps them
// within share of the client's own per-minute budget at the limits in
// force, rounded up to a millisecond; with no budget at all, a duration
// longer than any poll.
func (c *Client) spacing(share float64) time.Duration {
	c.mu.Lock()
	perMin := float64(c.limits.RequestsPerMin) * c.budget * share
	c.mu.Unlock()
	if perMin <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(float64(time.Minute)/perMin/float64(time.Millisecond))) * time.Millisecond
}

// LastOK is when a counted request last succeeded (heartbeats skip if recent).
func (c *Client) LastOK() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastOK
}

// Requests counts HTTP requests sent.
func (c *Client) Requests() int64 { return c.requests.Load() }

// Authorize opens a new session, then reads the account limits. A stale gen
// (another goroutine re-authorized meanwhile) makes it a no-op.
func (c *Client) Authorize(ctx context.Context) error { return c.reauth(ctx, ^uint64(0)) }

func (c *Client) reauth(ctx context.Context, seen uint64) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	c.mu.Lock()
	if seen != ^uint64(0) && c.gen != seen {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	body := map[string]any{"name": c.user, "pass": c.pass, "device": c.device, "meta": c.meta}
	r, err := c.post(ctx, "authorize.json", body)
	if err != nil {
		return err
	}
	if r.Shash == "" {
		return fmt.Errorf("authorize.json: %w: no shash", ErrBadResponse)
	}
	c.secrets.Set("camserver/"+c.device+"/shash", r.Shash)
	c.mu.Lock()
	c.shash, c.used = r.Shash, 0
	c.gen++
	close(c.authCh)
	c.authCh = make(chan struct{})
	c.lastOK = c.clk.Now()
	c.mu.Unlock()
	cfg, err := c.call(ctx, "getConfig.json", nil)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.setLimitsLocked(limitsFrom(cfg.Config))
	c.mu.Unlock()
	return nil
}

// call sends a counted request with the session id added to params. On
// NO_SUCH_SESSION it authorizes again and replays once.
func (c *Client) call(ctx context.Context, op string, params map[string]any) (*Response, error) {
	r, _, err := c.do(ctx, op, params, nil, "")
	return r, err
}

// do is call with an optional raw body (addRecord) or raw answer (getRecordData).
func (c *Client) do(ctx context.Context, op string, params map[string]any, blob []byte, query string) (*Response, []byte, error) {
	for attempt := 0; ; attempt++ {
		if err := c.before(ctx); err != nil {
			return nil, nil, err
		}
		shash, gen := c.Shash()
		var r *Response
		var raw []byte
		var err error
		switch {
		case blob != nil:
			q := url.Values{"shash": {shash}}
			if query != "" {
				q.Set("meta", query)
			}
			raw, err = c.send(ctx, op, q, blob)
			if err == nil {
				r, err = DecodeResponse(op, raw, c.secrets)
			}
		default:
			p := map[string]any{"shash": shash}
			for k, v := range params {
				p[k] = v
			}
			if op == "getRecordData.json" {
				var b []byte
				if b, err = json.Marshal(p); err == nil {
					raw, err = c.send(ctx, op, nil, b)
				}
				if err == nil {
					err = badRecordData(op, raw)
				}
				if err == nil {
					r = &Response{Result: "OK"}
				}
			} else {
				r, err = c.post(ctx, op, p)
			}
		}
		if attempt == 0 && errors.Is(err, ErrNoSuchSession) {
			if aerr := c.reauth(ctx, gen); aerr != nil {
				return nil, nil, fmt.Errorf("%s: re-authorize: %w", op, aerr)
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		c.mu.Lock()
		c.used++
		c.lastOK = c.clk.Now()
		c.mu.Unlock()
		return r, raw, nil
	}
}

// errNoBudget: the account's limits leave no request to make.
var errNoBudget = errors.New("the account's per-minute limit allows no request")

// before waits for a request token and starts a new session when this one
// has used 90 % of its total budget.
func (c *Client) before(ctx context.Context) error {
	c.mu.Lock()
	lim, used, maxReq, gen := c.limiter, c.used, c.limits.MaxRequests, c.gen
	c.mu.Unlock()
	if maxReq > 0 && used >= maxReq*9/10 {
		if err := c.reauth(ctx, gen); err != nil {
			return fmt.Errorf("renew session: %w", err)
		}
	}
	// The token is reserved and waited for on the injected clock (what
	// lim.Wait would do on the wall clock); a cancelled wait gives it back.
	now := c.clk.Now()
	r := lim.ReserveN(now, 1)
	if !r.OK() { // a rate of 0 once the burst is spent, as lim.Wait reports it
		return fmt.Errorf("request budget: %w", errNoBudget)
	}
	if err := c.clk.Sleep(ctx, r.DelayFrom(now)); err != nil {
		r.CancelAt(c.clk.Now())
		return fmt.Errorf("request budget: %w", err)
	}
	return nil
}

// post sends a JSON object and decodes the answer.
func (c *Client) post(ctx context.Context, op string, params map[string]any) (*Response, error) {
	b, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", op, err)
	}
	raw, err := c.send(ctx, op, nil, b)
	if err != nil {
		return nil, err
	}
	return DecodeResponse(op, raw, c.secrets)
}

// maxAnswer bounds a JSON answer or record body we read into memory.
const maxAnswer = 16 << 20

// send POSTs body with an exact Content-Length (the server drops the whole
// connection on a mismatch) under a per-request timeout scaled to the size.
func (c *Client) send(ctx context.Context, op string, q url.Values, body []byte) ([]byte, error) {
	u := c.base.JoinPath(op)
	if q != nil {
		u.RawQuery = q.Encode()
	}
	timeout := 15*time.Second + time.Duration(len(body)/(256<<10))*time.Second
	if op == "getRecordData.json" {
		timeout = 60 * time.Second
	}
	// A deadline on the request, so wall time: the injected clock has no timers.
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.ContentLength = int64(len(body))
	c.requests.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, scrub(err, c.base))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, &HTTPError{Op: op, Status: resp.StatusCode}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", op, err)
	}
	if len(raw) > maxAnswer {
		return nil, fmt.Errorf("%s: %w: answer over %d bytes", op, ErrBadResponse, maxAnswer)
	}
	return raw, nil
}

// scrub replaces a *url.Error (which quotes the URL, and with it the shash in
// query strings) by its inner error.
func scrub(err error, base *url.URL) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, base.Redacted(), ue.Err)
	}
	return err
}
