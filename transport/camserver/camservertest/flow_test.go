package camservertest_test

import (
	"bytes"
	"net"
	"net/url"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/camserver/frame"
)

// TestZeroWindowRefill speaks raw HTTP/2 to the fake: while pushing
// input.raw, every WINDOW_UPDATE it receives must be exactly 65535 and come
// only after the window it refills (connection or stream) reached zero.
func TestZeroWindowRefill(t *testing.T) {
	r := newRaw(t, camservertest.Options{})
	shash := r.auth("flow-dev")
	c, err := net.Dial("tcp", r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "PUT"}, {":scheme", "http"}, {":authority", r.srv.Addr()},
		{":path", "/input.raw?shash=" + url.QueryEscape(shash) + "&subproto=RAW_JPEG&delta=400"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})

	// The body: frames of 1000-byte payloads, back to back, cut at will.
	var body []byte
	for len(body) < 4*65535 {
		body, _ = frame.Append(body, bytes.Repeat([]byte{7}, 1000))
	}
	connWin, streamWin := int64(65535), int64(65535)
	sent := 0
	updates := 0
	for round := 0; round < 3; round++ {
		// Spend both windows down to exactly zero.
		for connWin > 0 && streamWin > 0 {
			n := int(min(connWin, streamWin, 16384))
			if err := fr.WriteData(1, false, body[sent:sent+n]); err != nil {
				t.Fatal(err)
			}
			sent += n
			connWin -= int64(n)
			streamWin -= int64(n)
		}
		// Now (and only now) both refills must arrive.
		for connWin == 0 || streamWin == 0 {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("round %d: waiting for window updates: %v", round, err)
			}
			wu, ok := f.(*http2.WindowUpdateFrame)
			if !ok {
				continue // SETTINGS, its ACK, PING
			}
			updates++
			if wu.Increment != 65535 {
				t.Fatalf("WINDOW_UPDATE(stream %d) of %d, want 65535", wu.StreamID, wu.Increment)
			}
			switch wu.StreamID {
			case 0:
				if connWin != 0 {
					t.Fatalf("connection window refilled at %d", connWin)
				}
				connWin += int64(wu.Increment)
			case 1:
				if streamWin != 0 {
					t.Fatalf("stream window refilled at %d", streamWin)
				}
				streamWin += int64(wu.Increment)
			}
		}
	}
	if updates != 6 {
		t.Fatalf("updates = %d, want 6", updates)
	}
	want := sent / (frame.HeaderLen + 1000)
	agenttest.Eventually(t, "the frames parsed", func() bool { return r.srv.Stats().Frames >= want })
	if got := r.srv.Stats().Frames; got != want {
		t.Fatalf("frames parsed %d, want %d", got, want)
	}
}
