package camservertest

import (
	"encoding/binary"
	"net"
	"sync"
)

// flowConn reproduces the reference server's receive flow control on top of
// the Go HTTP/2 server: a receive window (the connection's or a stream's) of
// 65535 bytes is refilled with exactly one WINDOW_UPDATE of 65535 when it
// reaches zero, and never earlier (docs/protocols/camera-server.md §1.5). So each
// connection uploads at most ~64 KiB per round trip, and a client that waits
// for room for a whole frame before sending would hang, as it would against
// the real server.
//
// It sits between the socket (or the TLS connection) and the Go server and
// reads the frame headers going both ways. The Go server is configured with
// larger buffers (like the real server's reassembly buffer and backlog);
// flowConn rewrites its SETTINGS_INITIAL_WINDOW_SIZE to 65535, drops its
// WINDOW_UPDATE frames (remembering the credit) and sends its own refill at
// zero, but only while the total it granted stays within what Go granted,
// so Go never sees a flow-control violation. A handler that stops reading therefore stalls the client once Go's buffer is full,
// and Hold stalls it at once (Server.Stall), with pings still answered.
//
// Concurrency: Read is called by the server's reader goroutine, Write by its
// writer; the window state and socket writes are under mu, and frames are
// forwarded whole, so an inserted WINDOW_UPDATE falls on a frame boundary.
type flowConn struct {
	net.Conn

	// Read side (client → server), owned by the reader goroutine.
	rPreface int    // preface bytes still to skip
	rHdr     []byte // partial frame header
	rSkip    int    // payload bytes of the current frame still to skip

	mu        sync.Mutex
	wBuf      []byte          // server → client bytes not yet forming a whole frame
	win       map[uint32]*win // 0 is the connection
	goInitial int64           // Go's real initial stream window
	held      bool            // no connection-level refills (Server.Stall)
	err       error
}

// Hold stops (or resumes) refilling the connection window: the peer's
// uploads stall at the next zero while everything else keeps working.
func (f *flowConn) Hold(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = on
	if out := f.refillLocked(nil, 0); len(out) > 0 && f.err == nil {
		_, f.err = f.Conn.Write(out)
	}
}

// win is one receive window: what the client may still send (avail), what
// we granted beyond the initial window, and what Go allows in total.
type win struct {
	avail   int64
	granted int64
	goAllow int64
}

const (
	refill        = 65535
	frameData     = 0x0
	frameHeaders  = 0x1
	frameRST      = 0x3
	frameSettings = 0x4
	frameWindow   = 0x8
	flagEndStream = 0x1
	flagAck       = 0x1
	settingWindow = 0x4
	prefaceLen    = 24
	headerLen     = 9
)

func newFlowConn(c net.Conn) *flowConn {
	return &flowConn{Conn: c, rPreface: prefaceLen, goInitial: refill,
		win: map[uint32]*win{0: {avail: refill, goAllow: refill}}}
}

func (f *flowConn) window(id uint32) *win {
	w := f.win[id]
	if w == nil {
		w = &win{avail: refill, goAllow: f.goInitial}
		f.win[id] = w
	}
	return w
}

// Read passes bytes through and accounts for the DATA frames in them.
func (f *flowConn) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	b := p[:n]
	for len(b) > 0 {
		switch {
		case f.rPreface > 0:
			k := min(f.rPreface, len(b))
			f.rPreface -= k
			b = b[k:]
		case f.rSkip > 0:
			k := min(f.rSkip, len(b))
			f.rSkip -= k
			b = b[k:]
		default:
			k := min(headerLen-len(f.rHdr), len(b))
			f.rHdr = append(f.rHdr, b[:k]...)
			b = b[k:]
			if len(f.rHdr) < headerLen {
				continue
			}
			length := int(f.rHdr[0])<<16 | int(f.rHdr[1])<<8 | int(f.rHdr[2])
			typ, id := f.rHdr[3], binary.BigEndian.Uint32(f.rHdr[5:])&0x7fffffff
			f.rHdr = f.rHdr[:0]
			f.rSkip = length
			if typ == frameData && length > 0 {
				f.consumed(id, int64(length))
			}
		}
	}
	return n, err
}

// consumed charges a DATA frame to the connection and stream windows and
// refills any that reached zero.
func (f *flowConn) consumed(id uint32, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.window(0).avail -= n
	f.window(id).avail -= n
	out := f.refillLocked(nil, 0)
	out = f.refillLocked(out, id)
	if len(out) > 0 && f.err == nil {
		_, f.err = f.Conn.Write(out)
	}
}

// refillLocked appends a WINDOW_UPDATE of 65535 for a window at zero, if Go
// would accept that much more.
func (f *flowConn) refillLocked(out []byte, id uint32) []byte {
	w := f.win[id]
	if w == nil || w.avail > 0 || refill+w.granted+refill > w.goAllow || (id == 0 && f.held) {
		return out
	}
	w.avail += refill
	w.granted += refill
	var fr [headerLen + 4]byte
	fr[2] = 4
	fr[3] = frameWindow
	binary.BigEndian.PutUint32(fr[5:], id)
	binary.BigEndian.PutUint32(fr[9:], refill)
	return append(out, fr[:]...)
}

// Write forwards whole frames: Go's WINDOW_UPDATEs become credit, its
// initial window setting is rewritten to 65535.
func (f *flowConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	f.wBuf = append(f.wBuf, p...)
	out := make([]byte, 0, len(f.wBuf))
	b := f.wBuf
	for len(b) >= headerLen {
		length := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		if len(b) < headerLen+length {
			break
		}
		fr := b[:headerLen+length]
		b = b[headerLen+length:]
		typ, flags, id := fr[3], fr[4], binary.BigEndian.Uint32(fr[5:])&0x7fffffff
		switch {
		case typ == frameWindow && length == 4:
			if w := f.win[id]; w != nil {
				w.goAllow += int64(binary.BigEndian.Uint32(fr[headerLen:]) & 0x7fffffff)
				out = f.refillLocked(out, id)
			}
			continue
		case typ == frameSettings && flags&flagAck == 0:
			for e := fr[headerLen:]; len(e) >= 6; e = e[6:] {
				if binary.BigEndian.Uint16(e) == settingWindow {
					// The client may have opened streams before this
					// arrived: like any peer, apply the change to them.
					v := int64(binary.BigEndian.Uint32(e[2:]))
					for id, w := range f.win {
						if id != 0 {
							w.goAllow += v - f.goInitial
						}
					}
					f.goInitial = v
					binary.BigEndian.PutUint32(e[2:], refill)
				}
			}
		case id != 0 && (typ == frameRST || (typ == frameData || typ == frameHeaders) && flags&flagEndStream != 0):
			delete(f.win, id) // the stream is over: forget its window
		}
		out = append(out, fr...)
	}
	f.wBuf = append(f.wBuf[:0], b...)
	if len(out) > 0 {
		if _, err := f.Conn.Write(out); err != nil {
			f.err = err
			return 0, err
		}
	}
	return len(p), nil
}
