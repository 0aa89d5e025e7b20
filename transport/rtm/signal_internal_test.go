package rtm

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/transport"
)

// TestSignalKeepsThePeersLastWord: the service sends why it ends the
// session and resets the socket; a write racing the reset fails first.
// The reader still delivers the frame that had arrived, and the socket
// ends with the write's error. (CI under qemu saw the link report "write
// candidate: connection reset by peer" instead of SDP_ERROR: the failed
// write closed the socket under the reader.)
func TestSignalKeepsThePeersLastWord(t *testing.T) {
	const last = `{"type":"session_state","data":{"state":"TERMINATED","termination_cause":"SDP_ERROR"}}`
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(last))
		if tc, ok := c.NetConn().(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with a reset, as a peer that drops the session does
		}
		c.Close()
	}))
	defer srv.Close()
	cfg := &Config{Token: "t", ClientID: "c"}
	s, err := dialSignal(context.Background(), cfg, "ws"+strings.TrimPrefix(srv.URL, "http"), nil,
		signalOptions{stats: &transport.Stats{}, clock: clock.Real{}, firstPing: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The writer alone first, so the write fails before anything is read
	// (on a loaded board the reader can be that late).
	writerDone := make(chan struct{})
	s.wg.Add(1)
	go func() {
		s.writeLoop()
		close(writerDone)
	}()
	deadline := time.After(10 * time.Second)
	for failed := false; !failed; {
		_ = s.send(TypeCandidate, CandidateData{})
		select {
		case <-writerDone:
			failed = true
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatal("no write failed on the reset socket")
		}
	}
	s.wg.Add(1)
	go s.readLoop()
	select {
	case m := <-s.In():
		if m.Type != TypeSessionState {
			t.Errorf("delivered %+v, want the session_state the service sent", m)
		}
	case <-s.Done():
		t.Fatalf("the socket ended (%v) without delivering the frame the service sent before its reset", s.Err())
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered")
	}
	<-s.Done()
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "rtm write candidate") {
		t.Errorf("socket error %v, want the failed write", err)
	}
	s.close()
}
