package frameio

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Message
		wantErr string
	}{
		{name: "heartbeat reply", in: `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"3"}`,
			want: Message{Topic: "phoenix", Event: "phx_reply", Payload: json.RawMessage(`{"status":"ok","response":{}}`), Ref: "3"}},
		{name: "push with null ref and bare string payload", in: `{"topic":"devices:1","event":"status_updated","payload":"paused","ref":null}`,
			want: Message{Topic: "devices:1", Event: "status_updated", Payload: json.RawMessage(`"paused"`)}},
		{name: "numeric ref and join_ref", in: `{"topic":"t","event":"e","payload":{},"ref":7,"join_ref":"1"}`,
			want: Message{Topic: "t", Event: "e", Payload: json.RawMessage(`{}`), Ref: "7", JoinRef: "1"}},
		{name: "missing payload is null", in: `{"topic":"t","event":"e","ref":null}`,
			want: Message{Topic: "t", Event: "e", Payload: json.RawMessage(`null`)}},
		{name: "V2 array refused", in: `[null,"1","phoenix","heartbeat",{}]`, wantErr: "not a V1"},
		{name: "no event", in: `{"topic":"t","payload":{}}`, wantErr: "without topic or event"},
		{name: "event not a string", in: `{"topic":"t","event":5}`, wantErr: "phoenix"},
		{name: "ref an object", in: `{"topic":"t","event":"e","ref":{}}`, wantErr: "ref"},
		{name: "garbage", in: `not json`, wantErr: "not a V1"},
		{name: "truncated", in: `{"topic":"t","event":`, wantErr: "phoenix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeMessage([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Topic != tc.want.Topic || got.Event != tc.want.Event || got.Ref != tc.want.Ref ||
				got.JoinRef != tc.want.JoinRef || string(got.Payload) != string(tc.want.Payload) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPausedState(t *testing.T) {
	tests := []struct {
		in         string
		paused, ok bool
	}{
		{`"paused"`, true, true},
		{`"resumed"`, false, true},
		{`{"status":"paused"}`, true, true},
		{`{"status":"resumed"}`, false, true},
		{`"sleeping"`, false, false},
		{`42`, false, false},
		{`null`, false, false},
	}
	for _, tc := range tests {
		p, ok := pausedState(json.RawMessage(tc.in))
		if p != tc.paused || ok != tc.ok {
			t.Errorf("pausedState(%s) = %v, %v; want %v, %v", tc.in, p, ok, tc.paused, tc.ok)
		}
	}
}

func TestPartRange(t *testing.T) {
	tests := []struct {
		size int64
		n    int
		want [][2]int64
	}{
		{10, 3, [][2]int64{{0, 4}, {4, 4}, {8, 2}}},
		{9, 3, [][2]int64{{0, 3}, {3, 3}, {6, 3}}},
		{1, 1, [][2]int64{{0, 1}}},
		{21136250, 2, [][2]int64{{0, 10568125}, {10568125, 10568125}}},
	}
	for _, tc := range tests {
		var total int64
		for i, w := range tc.want {
			off, n := partRange(tc.size, tc.n, i)
			if off != w[0] || n != w[1] {
				t.Errorf("partRange(%d,%d,%d) = %d,%d; want %v", tc.size, tc.n, i, off, n, w)
			}
			total += n
		}
		if total != tc.size {
			t.Errorf("parts of %d cover %d bytes", tc.size, total)
		}
	}
}

func TestSocketURLRedaction(t *testing.T) {
	u := socketURL("wss://api.frame.io/devices/websocket", "tok+en/x")
	if u != "wss://api.frame.io/devices/websocket?Authorization=Bearer%20tok%2Ben%2Fx&vsn=1.0.0" {
		t.Errorf("socketURL = %s", u)
	}
	err := redactErr(&testErr{"dial " + u + ": refused"})
	if strings.Contains(err.Error(), "tok") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("redacted = %q", err)
	}
}

type testErr struct{ s string }

func (e *testErr) Error() string { return e.s }

// FuzzDecodeMessage: the decoder never panics, and whatever it accepts
// survives an encode/decode round trip unchanged.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"1"}`,
		`{"topic":"devices:abc","event":"status_updated","payload":"paused","ref":null}`,
		`{"topic":"devices:abc","event":"phx_error","payload":{"reason":"channel_crash"},"ref":null,"join_ref":"2"}`,
		`{"topic":"t","event":"e","payload":[1,2],"ref":12}`,
		`[null,"1","phoenix","heartbeat",{}]`,
		`{"topic":"","event":"","payload":"","ref":""}`,
		`{}`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("encode of a decoded message: %v", err)
		}
		m2, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		if m2.Topic != m.Topic || m2.Event != m.Event || m2.Ref != m.Ref || m2.JoinRef != m.JoinRef {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
		_, _ = pausedState(m.Payload)
		_ = reason(m.Payload, nil)
	})
}
