package edgeimpulse

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
)

// BenchmarkSnapshotFrame is one low-resolution snapshot frame's whole path
// in the link, per frame: shrink the 640×480 camera frame to 96 px
// (scaleJPEG), base64 it, encode the snapshotFrame message and write it to
// a WebSocket over loopback, as the session's writer does (the peer reads
// and discards in the same process, so its share is counted too). The
// frames are the repository's 640×480 MJPEG clip, cycled.
func BenchmarkSnapshotFrame(b *testing.B) {
	frames := clipFrames(b)
	for _, enc := range []Encoding{JSON, CBOR} {
		b.Run(string(enc), func(b *testing.B) {
			conn := discardSocket(b)
			typ := websocket.TextMessage
			if enc == CBOR {
				typ = websocket.BinaryMessage
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				small, err := scaleJPEG(b.Context(), nil, frames[i%len(frames)], lowHeight)
				if err != nil {
					b.Fatal(err)
				}
				msg, err := EncodeMessage(enc, snapshotFrame{SnapshotFrame: base64.StdEncoding.EncodeToString(small), FileName: "frame.jpg"})
				if err != nil {
					b.Fatal(err)
				}
				if err := conn.WriteMessage(typ, msg); err != nil {
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
	up := websocket.Upgrader{}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, rd, err := c.NextReader()
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return
			}
		}
	}))
	conn, _, err := websocket.DefaultDialer.DialContext(b.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		srv.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.Close()
		<-done
		srv.Close()
	})
	return conn
}
