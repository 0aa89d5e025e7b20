package frameio

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/httpx"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// APIError is a non-2xx answer from Frame.io. Code is the OAuth error code
// ("authorization_pending") of the simple shape, Message the "message" of the
// detailed shape ("Channel Paused"). The body is never included verbatim, so
// nothing a server echoes back (tokens) can reach a log.
type APIError struct {
	Op      string
	Status  int
	Code    string
	Message string
	// Wait is the server's requested wait (rate-limit window or Retry-After).
	Wait time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.Op, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// errorBody covers both error shapes (docs/protocols/frameio-c2c.md §1.4):
// {"error":"…"} and
// {"code":409,"message":"…","errors":[…]}.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Errors  []struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

func parseAPIError(op string, resp *http.Response, now time.Time, sec *redact.Secrets, waits *retry.PeerWaits) *APIError {
	e := &APIError{Op: op, Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil {
		e.Code = sec.Peer(eb.Error, maxPeerText)
		e.Message = sec.Peer(eb.Message, maxPeerText)
		if e.Message == "" && len(eb.Errors) > 0 {
			e.Message = sec.Peer(eb.Errors[0].Title, maxPeerText)
		}
	}
	e.Wait = rateLimitWait(resp.Header, now, waits)
	return e
}

// maxPeerText bounds each string Frame.io supplies (error codes and
// messages, reasons, names) before it is logged or shown.
const maxPeerText = 80

// safeText keeps short printable text only: error texts are logged, and a
// misbehaving server must not be able to inject a log line. Text that may
// echo a credential goes through the link's secrets first (Link.peer).
func safeText(s string) string { return redact.Clean(s, maxPeerText) }

// rateLimitWait reads Retry-After, or the x-ratelimit-window (ms) when
// x-ratelimit-remaining is 0 (docs/protocols/frameio-c2c.md §1.3). Zero means
// no hint. Either is capped at retry.MaxRetryAfter (waits logs the first
// capped one; nil: no log).
func rateLimitWait(h http.Header, now time.Time, waits *retry.PeerWaits) time.Duration {
	if d, ok := waits.Header(h, now); ok {
		return d
	}
	if strings.TrimSpace(h.Get("x-ratelimit-remaining")) == "0" {
		if ms, err := strconv.ParseInt(strings.TrimSpace(h.Get("x-ratelimit-window")), 10, 64); err == nil && ms > 0 {
			return waits.Cap("x-ratelimit-window", time.Duration(min(ms, math.MaxInt64/int64(time.Millisecond)))*time.Millisecond)
		}
	}
	return 0
}

// classify turns an API error into a retry decision for the spool and the
// supervisor: 429 and slow_down wait, 5xx and unexpected statuses (which may
// come from infrastructure in between) are transient, 409 Channel Paused and
// malformed-request statuses that carry Frame.io's reason are permanent for
// the item (the same statuses without a reason are transient).
func classify(e *APIError) error {
	switch {
	case e.Status == http.StatusTooManyRequests || e.Message == "slow_down" || e.Code == "slow_down":
		wait := e.Wait
		if wait == 0 {
			wait = 5 * time.Second
		}
		return retry.RetryAfter(e, wait)
	case e.Status == http.StatusConflict && strings.EqualFold(e.Message, "Channel Paused"):
		return retry.Permanent(&itemRefused{fmt.Errorf("%w (captured while paused; kept on local storage)", e)})
	case e.Code == "invalid_client" || e.Message == "invalid_client":
		return retry.Permanent(e)
	case (e.Status == http.StatusBadRequest || e.Status == http.StatusRequestEntityTooLarge ||
		e.Status == http.StatusUnsupportedMediaType || e.Status == http.StatusUnprocessableEntity) &&
		(e.Code != "" || e.Message != ""):
		// Frame.io's own refusal says why (the error shapes of
		// docs/protocols/frameio-c2c.md §1.4); a bare status or a proxy's
		// HTML page says nothing about the item: retried.
		return retry.Permanent(&itemRefused{e})
	}
	if e.Wait > 0 {
		return retry.RetryAfter(e, e.Wait)
	}
	return e
}

// itemRefused marks a permanent refusal of one asset (paused channel, a
// malformed item), as opposed to a permanent problem of the link (lost
// authorization, bad client credentials) that must not drop queued media.
type itemRefused struct{ err error }

func (e *itemRefused) Error() string { return e.err.Error() }
func (e *itemRefused) Unwrap() error { return e.err }

// isAuthError reports whether err means the access token was refused.
func isAuthError(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

// api is the HTTPS side of the link: one client with our TLS settings and
// x-client-version on every call. Safe for concurrent use.
type api struct {
	base    string
	version string
	client  *http.Client
	now     func() time.Time
	// secrets are masked in the server's error texts (nil: none known).
	secrets *redact.Secrets
	// waits caps the waits Frame.io asks for (nil: capped, not logged).
	waits *retry.PeerWaits
}

// newHTTPClient builds the client for cfg with the policy every link shares
// (internal/httpx): ca_file added to the system roots, no verification only
// when insecure_skip_verify says so, and no redirect of the OAuth POSTs
// (client_secret, refresh token), of the API calls to another host or to
// http, or of a part PUT. No overall timeout: part uploads can take
// minutes; every call carries a context instead.
func newHTTPClient(cfg *Config) (*http.Client, *tls.Config, error) {
	tc, err := httpx.TLSConfig(httpx.TLS{CAFile: cfg.CAFile, InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		return nil, nil, fmt.Errorf("frameio: %w", err)
	}
	tr := httpx.NewTransport(tc)
	tr.ResponseHeaderTimeout = 60 * time.Second
	tr.MaxIdleConnsPerHost = 8
	return httpx.NewClient(tr), tc, nil
}

// userAgentVersion returns a valid semver for x-client-version
// (docs/protocols/frameio-c2c.md §1.1): Frame.io picks the device model
// configuration by it, and "dev" would not parse.
func userAgentVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if semver.MatchString(v) {
		return v
	}
	return "0.0.0"
}

var semver = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// form is a multipart/form-data body: the auth endpoints take multipart
// (docs/protocols/frameio-c2c.md §1.2).
func form(fields [][2]string) (io.Reader, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return &buf, w.FormDataContentType(), nil
}

// do sends one request to the API and decodes a 2xx JSON answer into out
// (nil to discard). A non-2xx answer is an *APIError; a transport error is
// wrapped with op.
func (a *api) do(ctx context.Context, op, method, path, bearer string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("x-client-version", a.version)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, redactErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return parseAPIError(op, resp, a.now(), a.secrets, a.waits)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s: decode response: %w", op, err)
	}
	return nil
}

// health asks GET /health (no auth; any 2xx is healthy,
// docs/protocols/frameio-c2c.md §3.2) so a failure can say whether Frame.io
// or our network is the problem.
func (a *api) health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return a.do(ctx, "health", http.MethodGet, "/health", "", nil, "", nil)
}

// redactErr strips query strings from URLs inside transport errors: presigned
// URLs and the socket URL carry credentials in their query.
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	r := redactQuery.ReplaceAllString(s, "?REDACTED")
	if r == s {
		return err
	}
	return &redacted{msg: r, err: err}
}

var redactQuery = regexp.MustCompile(`\?[^\s"']*`)

// redacted keeps the error chain (for errors.As on net errors) but prints
// the redacted text.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// newAPI returns the API client for cfg.
func newAPI(cfg *Config, version string, clk clock.Clock) (*api, error) {
	hc, _, err := newHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &api{base: strings.TrimRight(cfg.APIURL, "/"), version: userAgentVersion(version), client: hc, now: clk.Now}, nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
