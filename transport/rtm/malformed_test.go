package rtm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/transport/rtm"
)

// TestMalformedMessages: a broken field in a candidate or a state message is
// logged and dropped (the stream goes on); a frame that is not RTM at all,
// or an unusable SDP, ends the session with an error wrapping ErrBadMessage
// so the supervisor opens a new one.
func TestMalformedMessages(t *testing.T) {
	e := newEnv(t, time.Second)
	link := manualLink(t, e)
	tests := []struct {
		name  string
		frame string
		ends  bool
	}{
		{name: "candidate of the wrong type", frame: `{"type":"candidate","data":{"candidate":5}}`},
		{name: "unknown recording state", frame: `{"type":"recording_state","data":{"state":"WEIRD"}}`},
		{name: "session state without state", frame: `{"type":"session_state","data":{}}`},
		{name: "unknown type", frame: `{"type":"mystery","data":{"x":1}}`},
		{name: "not json", frame: `not json at all`, ends: true},
		{name: "sdp_update without sdp", frame: `{"type":"sdp_update","data":{"sdp":null}}`, ends: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			served := serveSession(t, link)
			e.fake.SendRaw([]byte(tc.frame))
			if tc.ends {
				select {
				case err := <-served:
					if !errors.Is(err, rtm.ErrBadMessage) {
						t.Fatalf("Serve = %v, want ErrBadMessage", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("session survived a malformed frame")
				}
				return
			}
			// A valid message after the bad one: once it is applied, the
			// bad one was handled before it.
			marker(t, e, served, []string{rtm.RecordingStopped, rtm.RecordingFailed}[i%2])
		})
	}
}
