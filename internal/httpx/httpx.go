// Package httpx is the one HTTP client policy of every link (Edge Impulse
// ingestion, Frame.io auth/API/uploads, RTM token_url and session calls, the
// camera server): the same TLS settings from the same two config fields, and
// the same redirect policy, so that no secret leaves for a place the config
// did not name.
//
// TLS. ca_file ADDS its certificates (a private CA, or a self-signed server
// certificate) to the system roots; it never replaces them. The same rule
// holds for every link: a private deployment works with ca_file alone, and a
// link whose peers hand out URLs on public hosts (Frame.io's presigned S3
// URLs) keeps working when ca_file is set for its API. insecure_skip_verify
// turns verification off (testing only; the config warns about it).
//
// Redirects. A client from NewClient follows a redirect only when all of
// these hold:
//
//   - the request is a GET or HEAD: a POST or PUT either re-sends its body on
//     307/308 (an API key, a client secret, a refresh token, a password, a
//     sample) or turns into a GET without it on 301/302/303, whose answer
//     would then be taken for the upload's;
//   - the target has the origin of the first request (scheme, host and port):
//     no other host, no https → http (Go itself keeps Authorization on a
//     same-host https → http hop, and any other header, x-api-key included,
//     on a hop to another host);
//   - the chain is still shorter than MaxRedirects requests (as with Go's
//     own limit, the MaxRedirects-th redirect answer is refused).
//
// Anything else is a *RedirectError naming the status and the target origin
// only (a Location's query may carry a credential). Callers treat it as
// transient: a proxy or a bad deploy on the service side may send it for a
// while, and whatever was being delivered stays queued. A websocket dial
// (gorilla) never follows redirects, so the socket dialers need no policy.
//
// Server-supplied URLs (an upload or WebSocket endpoint in a reply) are
// checked with CheckServerURL before any secret is sent to them.
//
// Concurrency: everything here is stateless; the clients are safe for
// concurrent use.
package httpx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// TLS is the TLS part of a link's config block: `ca_file` and
// `insecure_skip_verify`, the same in every link.
type TLS struct {
	CAFile             string
	InsecureSkipVerify bool
}

// TLSConfig returns the client TLS settings for t: TLS 1.2 or later, peers
// verified against the system roots plus the certificates in CAFile (read
// now), and no verification only when InsecureSkipVerify is set. A CAFile
// that cannot be read or holds no PEM certificate is an error; whether that
// is permanent is the caller's decision.
func TLSConfig(t TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in by config, warned about
	if t.CAFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool() // no system roots on this board: ca_file alone
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no certificate found (want PEM)", t.CAFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// NewTransport returns an HTTP transport for tc with the proxy from the
// environment and http.DefaultTransport's dial, idle and handshake timeouts.
// Callers adjust it (response header timeout, idle connections) before use.
func NewTransport(tc *tls.Config) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	tr.TLSClientConfig = tc
	return tr
}

// NewClient returns a client over rt that applies the redirect policy (see
// the package doc). It has no overall timeout: every request carries a
// context instead (part uploads may take minutes).
func NewClient(rt http.RoundTripper) *http.Client {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &http.Client{Transport: guard{rt}, CheckRedirect: CheckRedirect}
}

// MaxRedirects bounds the requests of one GET or HEAD chain, the first
// included: at most MaxRedirects-1 same-origin hops are followed.
const MaxRedirects = 5

// RedirectError is a redirect the policy refused. It names the status and
// the target's origin, never its path or query.
type RedirectError struct {
	Method string // of the request that was redirected
	Status int    // the redirect's HTTP status
	Target string // scheme://host:port of the Location; "" when it had none
	Reason string // which rule refused it
}

func (e *RedirectError) Error() string {
	to := e.Target
	if to == "" {
		to = "an unreadable Location"
	}
	return fmt.Sprintf("redirect refused: %s answered HTTP %d to %s (%s)", e.Method, e.Status, to, e.Reason)
}

// IsRedirect reports whether err is (or wraps) a refused redirect.
func IsRedirect(err error) bool {
	var re *RedirectError
	return errors.As(err, &re)
}

// CheckRedirect is the http.Client.CheckRedirect of every link: req is the
// next hop, via the requests made so far (via[0] the one the caller made).
// It refuses what the package doc lists.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	status := 0
	if req.Response != nil {
		status = req.Response.StatusCode
	}
	first := via[0]
	if why := refuse(first.Method, first.URL, req.URL); why != "" {
		return &RedirectError{Method: first.Method, Status: status, Target: Origin(req.URL), Reason: why}
	}
	if len(via) >= MaxRedirects {
		return &RedirectError{Method: first.Method, Status: status, Target: Origin(req.URL),
			Reason: fmt.Sprintf("stopped after %d requests", MaxRedirects)}
	}
	return nil
}

// refuse returns why a redirect of a method request from → to is refused,
// or "" when it may be followed.
func refuse(method string, from, to *url.URL) string {
	switch {
	case method != http.MethodGet && method != http.MethodHead:
		return "a " + method + " is never redirected: its body would be re-sent or dropped"
	case from.Scheme == "https" && to.Scheme != "https":
		return "a weaker scheme"
	case Origin(from) != Origin(to):
		return "another host"
	}
	return ""
}

// guard refuses a redirect response before http.Client looks at it, so a
// 307/308 that the client would hand back as a response (a request body
// without GetBody) or a 3xx without Location is the same *RedirectError as
// any other refused redirect: a caller never sees a 301/302/303/307/308 it
// might take for the service's verdict on what it sent.
type guard struct{ rt http.RoundTripper }

// CloseIdleConnections passes http.Client.CloseIdleConnections on to the
// transport (without it the client cannot reach it, and a caller that makes
// a transport per request leaks its idle connection each time).
func (g guard) CloseIdleConnections() {
	if c, ok := g.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.rt.RoundTrip(req)
	if err != nil || !isRedirect(resp.StatusCode) {
		return resp, err
	}
	loc, lerr := resp.Location()
	var why string
	switch {
	case errors.Is(lerr, http.ErrNoLocation):
		// Not followed by the client either; refused here so no caller
		// takes the 3xx for the service's verdict on what it sent.
		why = "no Location"
	case lerr != nil:
		why = "unreadable Location"
	default:
		why = refuse(req.Method, req.URL, loc)
	}
	if why == "" {
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	target := ""
	if lerr == nil {
		target = Origin(loc)
	}
	return nil, &RedirectError{Method: req.Method, Status: resp.StatusCode, Target: target, Reason: why}
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// Origin returns u's scheme://host:port with the scheme's default port made
// explicit (ws and wss count as http and https), so two spellings of one
// origin compare equal. It never includes user info, path or query.
func Origin(u *url.URL) string {
	if u == nil {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// CheckServerURL parses a URL a server handed the link (an upload URL, a
// WebSocket endpoint) and checks it before any secret goes to it: absolute,
// with a host, no user info, and the secure scheme (https or wss). The plain
// scheme (http or ws) is accepted only when the configured base URL the reply
// came from is itself plain (a test or a LAN set-up that chose clear text)
// and then only on the base's host name (the port may differ). Errors name
// the scheme and host, never the URL (it may carry a credential in its
// query). what names the URL in errors ("ws_endpoint").
func CheckServerURL(what, raw string, base *url.URL, secure, plain string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: not a URL", what)
	}
	switch {
	case !u.IsAbs() || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%s: not an absolute URL with a host", what)
	case u.User != nil:
		return nil, fmt.Errorf("%s: user info in the URL of %s", what, Origin(u))
	case strings.EqualFold(u.Scheme, secure):
		return u, nil
	case !strings.EqualFold(u.Scheme, plain):
		return nil, fmt.Errorf("%s: scheme %q (want %s)", what, u.Scheme, secure)
	case base == nil || base.Scheme != "http" && base.Scheme != "ws":
		return nil, fmt.Errorf("%s: clear-text %s to %s while the configured URL uses TLS (want %s)", what, plain, Origin(u), secure)
	case !strings.EqualFold(u.Hostname(), base.Hostname()):
		return nil, fmt.Errorf("%s: clear-text %s to another host (%s; the configured one is %s)", what, plain, Origin(u), base.Hostname())
	}
	return u, nil
}
