package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// pair is one proxied connection: the client side c and the upstream u.
type pair struct {
	c, u net.Conn
	once sync.Once
	done chan struct{} // closed when the pair is closed
}

// close ends both sides, with RST when rst is set. Safe to call many times;
// the first call decides how the connection ends.
func (pr *pair) close(rst bool) {
	pr.once.Do(func() {
		close(pr.done)
		for _, c := range []net.Conn{pr.c, pr.u} {
			if tc, ok := c.(*net.TCPConn); ok && rst {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
	})
}

// sleep waits d or until the pair closes; false means it closed.
func (pr *pair) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-pr.done:
		return false
	}
}

// chunk is bytes read from one side at a time.
type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst through a bounded queue of chunks: a reader
// goroutine (owned and waited for here) fills it, and this goroutine applies
// the stall, latency and bandwidth cap as it writes. On EOF from src it
// half-closes dst once everything queued was written, so a clean close
// travels through; on any error it closes the whole pair.
func (p *Proxy) pipe(pr *pair, src, dst net.Conn, fwd *atomic.Int64) {
	ch := make(chan chunk, p.queue)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		defer close(ch)
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.held.Add(int64(n))
				select {
				case ch <- chunk{b: append([]byte(nil), buf[:n]...), at: time.Now()}:
				case <-pr.done:
					p.held.Add(-int64(n))
					p.dropped.Add(int64(n))
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					pr.close(false)
				}
				return
			}
		}
	}()
	defer rwg.Wait()
	var next time.Time // bandwidth pacing: when the next byte may go
	for ck := range ch {
		if !p.forward(pr, dst, ck, fwd, &next) {
			pr.close(false)
			for rest := range ch { // the reader ends once pr is closed
				p.held.Add(-int64(len(rest.b)))
				p.dropped.Add(int64(len(rest.b)))
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// forward writes one chunk to dst under the current faults. It returns false
// when the pair closed or the write failed; the unwritten bytes are counted
// as dropped.
func (p *Proxy) forward(pr *pair, dst net.Conn, ck chunk, fwd *atomic.Int64, next *time.Time) bool {
	data := ck.b
	fail := func() bool {
		p.held.Add(-int64(len(data)))
		p.dropped.Add(int64(len(data)))
		return false
	}
	if !p.waitUnstalled(pr) {
		return fail()
	}
	p.mu.Lock()
	lat := p.latency
	p.mu.Unlock()
	if !pr.sleep(time.Until(ck.at.Add(lat))) {
		return fail()
	}
	for len(data) > 0 {
		if !p.waitUnstalled(pr) {
			return fail()
		}
		p.mu.Lock()
		bps := p.bps
		p.mu.Unlock()
		piece := data
		if bps > 0 {
			// Small pieces (1/20 s of budget) keep the rate smooth.
			if lim := int(max(bps/20, 512)); len(piece) > lim {
				piece = piece[:lim]
			}
		}
		n, err := dst.Write(piece)
		fwd.Add(int64(n))
		p.held.Add(-int64(n))
		data = data[n:]
		if err != nil {
			return fail()
		}
		if bps > 0 {
			now := time.Now()
			if next.Before(now) {
				*next = now
			}
			*next = next.Add(time.Duration(float64(n) / float64(bps) * float64(time.Second)))
			if !pr.sleep(time.Until(*next)) {
				return fail()
			}
		}
	}
	return true
}

// waitUnstalled blocks while the proxy is stalled; false means the pair
// closed meanwhile.
func (p *Proxy) waitUnstalled(pr *pair) bool {
	for {
		p.mu.Lock()
		stalled, ch := p.stalled, p.unstall
		p.mu.Unlock()
		if !stalled {
			return true
		}
		select {
		case <-ch:
		case <-pr.done:
			return false
		}
	}
}
