package camserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/internal/httpx"
)

// newTLSConfig builds the client TLS settings with the policy every link
// shares (internal/httpx): verified by default, ca_file ADDED to the system
// roots (until issue 13 this link alone replaced them), insecure_skip_verify
// only when configured; plus the server name and ALPN h2 of this link.
func newTLSConfig(cfg *Config, host string) (*tls.Config, error) {
	tc, err := httpx.TLSConfig(httpx.TLS{CAFile: cfg.CAFile, InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		return nil, err
	}
	tc.ServerName, tc.NextProtos = host, []string{"h2"}
	return tc, nil
}

// pinnedDialer dials one resolved address for the whole session, so that the
// JSON connection and the stream connection leave from the same source
// address family: the server binds a session to the client IP
// (docs/protocols/camera-server.md §1.6, §5.2).
//
// It also tracks every connection it made, so that closeAll ends them all
// when the session closes: CloseIdleConnections spares a connection a
// request still holds (a cancelled input.raw whose reset is still being
// written, a record delivery in flight), and such a connection then stayed
// open with its goroutines after the session that owned it was gone (one
// per session ended by a single HTTP error).
type pinnedDialer struct {
	addr string // ip:port
	tls  *tls.Config

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// closeAll closes every connection of the session and refuses new ones.
func (p *pinnedDialer) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = nil, true
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// track records c for closeAll and returns it wrapped so that closing it
// forgets it.
func (p *pinnedDialer) track(c net.Conn) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return nil, fmt.Errorf("dial %s: %w (session closed)", p.addr, net.ErrClosed)
	}
	if p.conns == nil {
		p.conns = map[net.Conn]struct{}{}
	}
	p.conns[c] = struct{}{}
	sc := sessionConn{Conn: c, p: p}
	if tc, ok := c.(*tls.Conn); ok {
		return &sessionTLSConn{sessionConn: sc, tc: tc}, nil
	}
	return &sc, nil
}

func (p *pinnedDialer) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// sessionConn is a connection pinnedDialer tracks.
type sessionConn struct {
	net.Conn
	p *pinnedDialer
}

func (c *sessionConn) Close() error {
	c.p.forget(c.Conn)
	return c.Conn.Close()
}

// sessionTLSConn keeps the TLS state visible (x/net/http2 reads it through
// ConnectionState).
type sessionTLSConn struct {
	sessionConn
	tc *tls.Conn
}

func (c *sessionTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// resolve picks the server address once per session, preferring IPv4.
func resolve(ctx context.Context, u *url.URL) (string, error) {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.String(), port), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", host, err)
	}
	best := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip.Unmap()
			break
		}
	}
	return net.JoinHostPort(best.String(), port), nil
}

func (p *pinnedDialer) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if p.tls == nil {
		return p.track(c)
	}
	tc := tls.Client(c, p.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		tc.Close()
		return nil, fmt.Errorf("server did not negotiate HTTP/2 (ALPN %q)", tc.ConnectionState().NegotiatedProtocol)
	}
	return p.track(tc)
}

// newTransport returns an HTTP/2-only transport: TLS with ALPN h2, or h2c
// with prior knowledge for http:// URLs (the server has no Upgrade route).
// Pings detect dead TCP paths; they cannot detect a stalled window (the
// stream watchdog does that).
func newTransport(p *pinnedDialer) *http2.Transport {
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			return p.dial(ctx)
		},
		ReadIdleTimeout:  15 * time.Second,
		PingTimeout:      5 * time.Second,
		WriteByteTimeout: 15 * time.Second,
	}
}

var _ http.RoundTripper = (*http2.Transport)(nil)
