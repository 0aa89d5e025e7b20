package edgeimpulse

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
	"github.com/edge-agent/edge-agent/transport"
)

// BenchmarkSnapshotFrame is one low-resolution snapshot frame's whole path
// in the link, per frame, through the session's own code: shrink the
// 640×480 camera frame to 96 px (the stream's scaler, with no hub cache),
// build the snapshotFrame message in a pooled buffer (sendFrame) and write
// it to a WebSocket over loopback (the writer's write, which hands the
// buffer back). The peer reads and discards in the same process, so its
// share is counted too. The frames are the repository's 640×480 MJPEG
// clip, cycled.
func BenchmarkSnapshotFrame(b *testing.B) {
	frames := clipFrames(b)
	for _, enc := range []Encoding{JSON, CBOR} {
		b.Run(string(enc), func(b *testing.B) {
			s := newSession(&Link{enc: enc, deps: transport.Deps{}.WithDefaults()}, discardSocket(b))
			var shrink scaler
			pool := newFramePool()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				small, err := shrink.scale(b.Context(), nil, frames[i%len(frames)], lowHeight)
				if err != nil {
					b.Fatal(err)
				}
				s.sendFrame(pool, small)
				if err := s.write(<-s.out); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// clipFrames splits testdata/media/testsrc-640x480-10frames.mjpeg.
func clipFrames(b *testing.B) [][]byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "media", "testsrc-640x480-10frames.mjpeg"))
	if err != nil {
		b.Fatal(err)
	}
	sp := mjpeg.NewSplitter(bytes.NewReader(data))
	var out [][]byte
	for {
		f, err := sp.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, bytes.Clone(f))
	}
	if len(out) == 0 {
		b.Fatal("no frames in the clip")
	}
	return out
}

// discardSocket is a client WebSocket to a loopback server that reads and
// drops every message; both close when the benchmark ends.
func discardSocket(b *testing.B) *websocket.Conn {
	b.Helper()
	return loopbackSocket(b, func(c *websocket.Conn) bool {
		_, rd, err := c.NextReader()
		if err != nil {
			return false
		}
		_, err = io.Copy(io.Discard, rd)
		return err == nil
	})
}
