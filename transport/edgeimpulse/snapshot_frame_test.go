package edgeimpulse

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/transport"
)

// TestSnapshotFrameBytes: the message built in place is byte for byte what
// EncodeMessage writes for snapshotFrame (what the fake and Studio decode,
// docs/protocols/edge-impulse.md §4.7), at base64 lengths on each side of
// every CBOR length-head boundary (24, 256, 65536), appended after other
// bytes and into a reused buffer holding a longer message.
func TestSnapshotFrameBytes(t *testing.T) {
	sizes := []int{0, 1, 2, 3, 15, 17, 18, 19, 189, 190, 191, 192, 193, 3000, 49151, 49152, 49153}
	for _, enc := range []Encoding{JSON, CBOR} {
		stale := appendSnapshotFrame(nil, enc, bytes.Repeat([]byte{0xff}, 60000))
		for _, n := range sizes {
			img := make([]byte, n)
			for i := range img {
				img[i] = byte(i*7 + n) // every base64 character, + and / among them
			}
			want, err := EncodeMessage(enc, snapshotFrame{SnapshotFrame: base64.StdEncoding.EncodeToString(img), FileName: "frame.jpg"})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendSnapshotFrame(nil, enc, img); !bytes.Equal(got, want) {
				t.Errorf("%s, %d bytes: built %q…, EncodeMessage %q…", enc, n, got[:min(len(got), 40)], want[:min(len(want), 40)])
			}
			if got := appendSnapshotFrame([]byte("xy"), enc, img); !bytes.Equal(got[2:], want) || string(got[:2]) != "xy" {
				t.Errorf("%s, %d bytes: not appended after dst's bytes", enc, n)
			}
			if got := appendSnapshotFrame(stale[:0], enc, img); !bytes.Equal(got, want) {
				t.Errorf("%s, %d bytes: differs when built in a used buffer", enc, n)
			}
		}
	}
}

// TestSnapshotFramesSurviveBufferReuse: snapshot frames queued before the
// writer runs, and frames built in buffers the writer has handed back while
// others are still queued, reach the peer intact and in order; the frame
// that finds the queue full is dropped and counted. A pool that handed a
// queued buffer out again would send one frame's picture under another's
// (or a torn one).
func TestSnapshotFramesSurviveBufferReuse(t *testing.T) {
	for _, enc := range []Encoding{JSON, CBOR} {
		t.Run(string(enc), func(t *testing.T) {
			conn, got := recordSocket(t)
			s := newSession(&Link{enc: enc, deps: transport.Deps{}.WithDefaults()}, conn)
			pool := newFramePool()
			// Frame i is a distinct picture; later ones are shorter, so a
			// reused buffer holds a longer message's tail.
			pic := func(i int) []byte {
				p := bytes.Repeat([]byte{byte(i)}, 4000-100*i)
				copy(p, fmt.Sprintf("frame %d", i))
				return p
			}
			var want []int
			for i := range outQueue + 1 {
				s.sendFrame(pool, pic(i))
				if i < outQueue {
					want = append(want, i)
				}
			}
			if n := s.framesDropped.Load(); n != 1 {
				t.Errorf("%d frames dropped with the queue full, want 1", n)
			}
			if n := len(pool.free); n != 1 {
				t.Errorf("%d buffers free with the queue full, want 1 (the dropped frame's)", n)
			}
			for range 3 {
				if err := s.write(<-s.out); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(pool.free); n != 4 {
				t.Errorf("%d buffers free after 3 writes, want 4", n)
			}
			for i := outQueue + 1; i < outQueue+4; i++ {
				s.sendFrame(pool, pic(i)) // in a buffer already written
				want = append(want, i)
			}
			if n := len(pool.free); n != 1 {
				t.Errorf("%d buffers left free, want 1: the frames did not reuse the written ones", n)
			}
			// The rest goes through the session's writer.
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { _ = s.writeLoop(ctx) })
			defer wg.Wait()
			defer cancel()
			for k, i := range want {
				var m recorded
				select {
				case m = <-got:
				case <-t.Context().Done():
					t.Fatalf("message %d never arrived", k)
				}
				if wantTyp := s.frameType; m.typ != wantTyp {
					t.Errorf("message %d: frame type %d, want %d", k, m.typ, wantTyp)
				}
				if p := decodeSnapshotFrame(t, enc, m.b); !bytes.Equal(p, pic(i)) {
					t.Errorf("message %d: carries %q… (%d bytes), want frame %d (%d bytes)", k, p[:min(len(p), 9)], len(p), i, len(pic(i)))
				}
			}
		})
	}
}

// TestSnapshotFrameSteadyAllocs: once its pool is warm, a snapshot stream
// allocates nothing per frame in the link's own code: building the message
// in place and queueing it, and the writer handing its buffer back. (The
// shrink is checked with libjpeg-turbo in snapshot_alloc_cgo_test.go; what
// else remains per frame is gorilla's per-message writer and, for several
// links on one camera, the hub's shared preview cache.)
func TestSnapshotFrameSteadyAllocs(t *testing.T) {
	small := bytes.Repeat([]byte("a 96 px preview "), 200)
	for _, enc := range []Encoding{JSON, CBOR} {
		if n := frameAllocs(t, enc, func() []byte { return small }); n != 0 {
			t.Errorf("%s: %v allocations per frame, want 0", enc, n)
		}
	}
}

// frameAllocs is the allocations per frame of a warm stream whose frames
// next gives: the message built and queued (sendFrame), then taken off the
// queue and its buffer handed back, as the writer does.
func frameAllocs(t *testing.T, enc Encoding, next func() []byte) float64 {
	t.Helper()
	s := newSession(&Link{enc: enc, deps: transport.Deps{}.WithDefaults()}, nil)
	pool := newFramePool()
	step := func() {
		s.sendFrame(pool, next())
		m := <-s.out
		m.frame.pool.put(m.frame)
	}
	step() // warm-up: the buffers grow to size
	return testing.AllocsPerRun(50, step)
}

// decodeSnapshotFrame decodes a snapshotFrame message as the fake does and
// returns its picture.
func decodeSnapshotFrame(t *testing.T, enc Encoding, b []byte) []byte {
	t.Helper()
	var f snapshotFrame
	var err error
	if enc == CBOR {
		err = cbor.Unmarshal(b, &f)
	} else {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		t.Fatalf("undecodable frame %q…: %v", b[:min(len(b), 40)], err)
	}
	if f.FileName != "frame.jpg" {
		t.Errorf("fileName %q", f.FileName)
	}
	p, err := base64.StdEncoding.DecodeString(f.SnapshotFrame)
	if err != nil {
		t.Fatalf("frame's base64: %v", err)
	}
	return p
}

type recorded struct {
	typ int
	b   []byte
}

// recordSocket is a client WebSocket to a loopback server that passes on
// every message it reads; both close when the test ends.
func recordSocket(t *testing.T) (*websocket.Conn, <-chan recorded) {
	t.Helper()
	got := make(chan recorded, 64)
	conn := loopbackSocket(t, func(c *websocket.Conn) bool {
		typ, b, err := c.ReadMessage()
		if err != nil {
			return false
		}
		select {
		case got <- recorded{typ, b}:
			return true
		default:
			t.Error("recordSocket: more messages than expected")
			return false
		}
	})
	return conn, got
}

// loopbackSocket is a client WebSocket to a loopback server that calls
// read on its side of the connection until read returns false; both close
// when the test ends.
func loopbackSocket(tb testing.TB, read func(*websocket.Conn) bool) *websocket.Conn {
	tb.Helper()
	up := websocket.Upgrader{}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for read(c) {
		}
	}))
	conn, _, err := websocket.DefaultDialer.DialContext(tb.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		srv.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn.Close()
		<-done
		srv.Close()
	})
	return conn
}
