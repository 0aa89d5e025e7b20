package conf

import (
	"net"
	"net/url"
	"strings"
)

// SocketTLS checks a link's WebSocket URL against the https URL the same
// link uses for its API or ingestion: a ws:// socket then carries what (the
// credential the link presents on it) in clear text although TLS was asked
// for next to it.
//
//   - socket ws:// on loopback: nothing, the credential never leaves the
//     board (a local relay, a test rig).
//   - socket ws:// on the API's host name (the port may differ): a warning.
//     Most likely wss was meant, but a service whose TLS front covers only
//     its REST side leaves the operator no other choice, and the link must
//     still run then (as with insecure_skip_verify).
//   - socket ws:// on another host: a problem, the config is refused. The
//     https API shows the credential was meant to travel over TLS; a
//     clear-text socket to a host the TLS side never vouched for is a typo
//     in a hand-copied URL or an edit sending the credential elsewhere,
//     nothing a working set-up needs (a TLS-terminating front on the socket
//     path serves wss://), and a warning is read only after the first dial
//     has sent the credential to it, and again at every retry.
//
// Plain http with ws:// (the tests, a LAN service without TLS) is not this
// check's business: nothing there was asked to be protected. Unparsable
// URLs are left to URL, which names them.
func (v *Validator) SocketTLS(socketField, socket, apiField, api, what string) {
	s, err := url.Parse(socket)
	if err != nil || !strings.EqualFold(s.Scheme, "ws") || s.Hostname() == "" {
		return
	}
	a, err := url.Parse(api)
	if err != nil || !strings.EqualFold(a.Scheme, "https") || a.Hostname() == "" {
		return
	}
	host := s.Hostname()
	if host == "localhost" || isLoopbackIP(host) {
		return
	}
	if !strings.EqualFold(host, a.Hostname()) {
		v.Errorf(socketField, "ws:// to %s sends %s in clear text to another host than %s (%s, https); use wss://",
			host, what, apiField, a.Hostname())
		return
	}
	v.Warnf(socketField, "ws:// sends %s in clear text while %s uses https on the same host; use wss://", what, apiField)
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
