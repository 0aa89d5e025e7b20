package rtm

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/pion/webrtc/v4"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		check   func(t *testing.T, m Message)
	}{
		{name: "answer", in: `{"type":"sdp_update","session_id":"s1","data":{"sdp":{"type":"answer","sdp":"v=0\r\n"}}}`,
			check: func(t *testing.T, m Message) {
				sd, err := m.SDP()
				if err != nil || sd.Type != webrtc.SDPTypeAnswer {
					t.Fatalf("SDP() = %v, %v", sd, err)
				}
			}},
		{name: "candidate", in: `{"type":"candidate","data":{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}}`,
			check: func(t *testing.T, m Message) {
				c, err := m.Candidate()
				if err != nil || c.SDPMid == nil || *c.SDPMid != "0" {
					t.Fatalf("Candidate() = %+v, %v", c, err)
				}
			}},
		{name: "terminated", in: `{"type":"session_state","data":{"state":"TERMINATED","termination_cause":"TWO_TIMER"}}`,
			check: func(t *testing.T, m Message) {
				d, err := m.SessionState()
				if err != nil || d.TerminationCause != CauseTwoTimer {
					t.Fatalf("SessionState() = %+v, %v", d, err)
				}
			}},
		{name: "recording state", in: `{"type":"recording_state","data":{"recording_id":"r","state":"FAILED"}}`,
			check: func(t *testing.T, m Message) {
				if d, err := m.RecordingState(); err != nil || d.State != RecordingFailed {
					t.Fatalf("RecordingState() = %+v, %v", d, err)
				}
			}},
		{name: "bad recording state", in: `{"type":"recording_state","data":{"state":"MAYBE"}}`,
			check: func(t *testing.T, m Message) {
				if _, err := m.RecordingState(); !errors.Is(err, ErrBadMessage) {
					t.Fatalf("err = %v", err)
				}
			}},
		{name: "sdp with rollback type", in: `{"type":"sdp_update","data":{"sdp":{"type":"rollback","sdp":"x"}}}`,
			check: func(t *testing.T, m Message) {
				if _, err := m.SDP(); !errors.Is(err, ErrBadMessage) {
					t.Fatalf("err = %v", err)
				}
			}},
		{name: "ping without data", in: `{"type":"ping"}`},
		{name: "no type", in: `{"data":{}}`, wantErr: true},
		{name: "not json", in: `hello`, wantErr: true},
		{name: "data not object", in: `{"type":"ping","data":[1]}`, wantErr: true},
		{name: "empty", in: ``, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error does not wrap ErrBadMessage: %v", err)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

// FuzzDecodeMessage: no input panics the decoder or the typed accessors, and
// whatever decodes re-encodes to something that decodes to the same envelope.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"sdp_update","session_id":"s1","data":{"sdp":{"type":"answer","sdp":"v=0\r\n"}}}`,
		`{"type":"candidate","data":{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}}`,
		`{"type":"session_state","data":{"state":"TERMINATED","termination_cause":"TWO_TIMER"}}`,
		`{"type":"recording_state","data":{"recording_id":"r","state":"STOPPED"}}`,
		`{"type":"recording_start","data":{"upload_url":"http://x/y"}}`,
		`{"type":"ping","data":{"seq":1}}`,
		`{"type":"ping","data":null}`,
		`{"type":"x","data":"str"}`,
		`[]`, `null`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error does not wrap ErrBadMessage: %v", err)
			}
			return
		}
		_, _ = m.SDP()
		_, _ = m.Candidate()
		_, _ = m.SessionState()
		_, _ = m.RecordingState()
		_, _ = m.RecordingStart()
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		if m2.Type != m.Type || m2.SessionID != m.SessionID || m2.ClientID != m.ClientID {
			t.Fatalf("round trip changed the envelope: %+v → %+v", m, m2)
		}
	})
}
