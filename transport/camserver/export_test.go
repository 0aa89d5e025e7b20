package camserver

import (
	"crypto/tls"

	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/internal/clock"
)

// Exports for the external tests and benchmarks.

// FrameBody is the input.raw request body.
type FrameBody = frameBody

// NewFrameBody returns an input.raw request body.
func NewFrameBody() *FrameBody { return newFrameBody(clock.Real{}.Now) }

// NewPinnedTransport returns the link's HTTP/2 transport dialing addr.
func NewPinnedTransport(addr string, tc *tls.Config) *http2.Transport {
	return newTransport(&pinnedDialer{addr: addr, tls: tc})
}
