// Package faultproxy is a loopback TCP proxy for fault-injection tests. It
// sits between a link and a fake service and turns the network bad on
// request: added latency, a bandwidth cap, a stall (bytes are accepted but
// none forwarded, and nothing is closed), connection resets (RST, via
// SO_LINGER 0), clean cuts (FIN) and refusing new connections. Faults apply to
// live connections at once, so a test can break a session mid-stream.
//
// The proxy knows nothing about the protocol it carries: TLS, HTTP/2 and
// WebSocket pass through unchanged, and what a link sees is exactly what a bad
// network or a hung peer would show it.
//
// Concurrency: every method is safe for concurrent use. Each accepted
// connection is served by goroutines the Proxy owns; Close stops the listener,
// closes every connection and waits for all of them.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults.
const (
	// DefaultQueue bounds the chunks held per direction of one connection
	// while delayed or stalled; with chunkSize that is at most 1 MiB, after
	// which the proxy stops reading and TCP flow control pushes back on the
	// sender, as a hung peer's full receive window would.
	DefaultQueue = 32
	chunkSize    = 32 << 10
	dialTimeout  = 5 * time.Second
)

// Options configures a Proxy.
type Options struct {
	// Listen is the address to accept on; default 127.0.0.1:0.
	Listen string
	// Target is the upstream host:port (required; SetTarget changes it for
	// later connections).
	Target string
	// Queue bounds the chunks buffered per direction (DefaultQueue).
	Queue  int
	Logger *slog.Logger
}

// Stats counts what the proxy did. Dropped counts bytes read from one side
// that were never written to the other because the connection was reset,
// cut or closed while they were queued (what a real broken network loses).
type Stats struct {
	Accepted   int64 // connections accepted
	Refused    int64 // connections reset at once (Refuse) or whose upstream dial failed
	Active     int   // connections open now
	Resets     int64 // connections ended with RST by Reset
	Cuts       int64 // connections ended with FIN by Cut
	BytesUp    int64 // client → target bytes forwarded
	BytesDown  int64 // target → client bytes forwarded
	Dropped    int64 // queued bytes discarded when a connection ended
	Held       int64 // bytes read and not yet forwarded or dropped (delayed or stalled)
	DialErrors int64
}

// Proxy is one listening proxy. Create it with New.
type Proxy struct {
	ln    net.Listener
	log   *slog.Logger
	queue int

	ctx    context.Context // ends on Close: aborts upstream dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	target  string
	latency time.Duration
	bps     int64 // bytes per second per direction; 0 = unlimited
	stalled bool
	unstall chan struct{} // closed when a stall is lifted
	refuse  bool
	conns   map[*pair]struct{}
	closed  bool

	accepted, refused, resets, cuts      atomic.Int64
	bytesUp, bytesDown, dropped, dialErr atomic.Int64
	held                                 atomic.Int64
}

// New starts a proxy.
func New(opts Options) (*Proxy, error) {
	if opts.Target == "" {
		return nil, errors.New("faultproxy: target required")
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, log: opts.Logger, queue: opts.Queue, ctx: ctx, cancel: cancel,
		target: opts.Target, unstall: make(chan struct{}), conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the proxy's listening address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget changes the upstream for connections accepted from now on
// (a restarted fake on a new port).
func (p *Proxy) SetTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// SetLatency delays every chunk by d in each direction (0 = none). It applies
// to bytes read from now on.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = max(d, 0)
	p.mu.Unlock()
}

// SetBandwidth caps each direction of each connection at bytesPerSec
// (0 = unlimited).
func (p *Proxy) SetBandwidth(bytesPerSec int64) {
	p.mu.Lock()
	p.bps = max(bytesPerSec, 0)
	p.mu.Unlock()
}

// Slow is SetLatency and SetBandwidth together; Slow(0, 0) is a clean network.
func (p *Proxy) Slow(latency time.Duration, bytesPerSec int64) {
	p.SetLatency(latency)
	p.SetBandwidth(bytesPerSec)
}

// Stall stops (true) or resumes (false) forwarding in both directions of
// every connection, current and new. While stalled the proxy keeps accepting
// and reading until its bounded queues fill, never closes anything and
// forwards nothing: a peer that hangs with the socket open.
func (p *Proxy) Stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on == p.stalled {
		return
	}
	p.stalled = on
	if !on {
		close(p.unstall)
		p.unstall = make(chan struct{})
	}
}

// Refuse makes the proxy reset new connections at once (true) as a host whose
// service is down would, or accept them again (false).
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Reset ends every current connection with a TCP RST on both sides
// (SO_LINGER 0) and returns how many it ended.
func (p *Proxy) Reset() int { return p.endAll(true) }

// Cut closes every current connection cleanly (FIN on both sides) and returns
// how many it closed.
func (p *Proxy) Cut() int { return p.endAll(false) }

func (p *Proxy) endAll(rst bool) int {
	p.mu.Lock()
	list := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		list = append(list, c)
	}
	p.mu.Unlock()
	for _, c := range list {
		c.close(rst)
	}
	if rst {
		p.resets.Add(int64(len(list)))
	} else {
		p.cuts.Add(int64(len(list)))
	}
	return len(list)
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{Accepted: p.accepted.Load(), Refused: p.refused.Load(), Active: active,
		Resets: p.resets.Load(), Cuts: p.cuts.Load(), BytesUp: p.bytesUp.Load(),
		BytesDown: p.bytesDown.Load(), Dropped: p.dropped.Load(), Held: p.held.Load(), DialErrors: p.dialErr.Load()}
}

// Close stops accepting, closes every connection and waits for every
// goroutine the proxy started.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() == nil {
				p.log.Warn("faultproxy accept", "err", err)
			}
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		refuse, target, closed := p.refuse, p.target, p.closed
		p.mu.Unlock()
		if refuse || closed {
			p.refused.Add(1)
			abort(c)
			continue
		}
		p.wg.Add(1)
		go p.serve(c, target)
	}
}

// serve dials the target for client c and runs both directions.
func (p *Proxy) serve(c net.Conn, target string) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	u, err := d.DialContext(p.ctx, "tcp", target)
	if err != nil {
		p.dialErr.Add(1)
		p.refused.Add(1)
		abort(c)
		return
	}
	pr := &pair{c: c, u: u, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pr.close(false)
		return
	}
	p.conns[pr] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(pr, c, u, &p.bytesUp) }()
	go func() { defer wg.Done(); p.pipe(pr, u, c, &p.bytesDown) }()
	wg.Wait()
	pr.close(false)
	p.mu.Lock()
	delete(p.conns, pr)
	p.mu.Unlock()
}

// abort resets c at once.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
