package camservertest_test

import (
	"testing"

	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
)

// TestTrustPoisonedParams: a message stored with non-object params puts the
// running server's getMsgs into DATABASE_FAIL for every device (the sender
// included) until it restarts, after which messages list again without it;
// PoisonParserFail keeps the source's reading (JSON_PARSER_FAIL for the
// recipients). FailNext answers a path with a bare HTTP status.
func TestTrustPoisonedParams(t *testing.T) {
	t.Run("running server", func(t *testing.T) {
		r := newRaw(t, camservertest.Options{})
		a, b := r.auth("sender-a"), r.auth("reader-b")
		r.json("/addMsgs.json", map[string]any{"shash": a, "msg": "x", "target": "reader-b", "params": "abc"}, nil)
		for _, s := range []string{a, b} {
			if got := code(r.json("/getMsgs.json", map[string]any{"shash": s, "stamp": ""}, nil)); got != 3 {
				t.Fatalf("getMsgs code %d, want 3 (DATABASE_FAIL) for every device", got)
			}
		}
		if got := code(r.json("/heartBit.json", map[string]any{"shash": b}, nil)); got != 0 {
			t.Fatalf("heartBit code %d, want 0", got)
		}
		if err := r.srv.Restart(); err != nil {
			t.Fatal(err)
		}
		r.rt.CloseIdleConnections()
		r.json("/addMsgs.json", map[string]any{"shash": a, "msg": "y", "target": "reader-b", "params": map[string]any{}}, nil)
		m := r.json("/getMsgs.json", map[string]any{"shash": b, "stamp": ""}, nil)
		if got := code(m); got != 0 {
			t.Fatalf("after restart getMsgs code %d, want 0", got)
		}
		if msgs, _ := m["msgs"].([]any); len(msgs) != 1 {
			t.Fatalf("after restart: %v, want the one good message", m["msgs"])
		}
	})
	t.Run("source reading", func(t *testing.T) {
		r := newRaw(t, camservertest.Options{PoisonParserFail: true})
		a, b := r.auth("sender-a"), r.auth("reader-b")
		r.json("/addMsgs.json", map[string]any{"shash": a, "msg": "x", "target": "reader-b", "params": "abc"}, nil)
		if got := code(r.json("/getMsgs.json", map[string]any{"shash": b, "stamp": ""}, nil)); got != 4 {
			t.Fatalf("recipient's getMsgs code %d, want 4", got)
		}
		if got := code(r.json("/getMsgs.json", map[string]any{"shash": a, "stamp": ""}, nil)); got != 0 {
			t.Fatalf("sender's getMsgs code %d, want 0", got)
		}
	})
	t.Run("fail next", func(t *testing.T) {
		r := newRaw(t, camservertest.Options{})
		r.srv.FailNext("/authorize.json", 404, 1)
		resp, _, err := r.req("POST", "/authorize.json", nil, 0, nil)
		if err != nil || resp.StatusCode != 404 {
			t.Fatalf("first authorize: %v, %v; want 404", resp, err)
		}
		r.auth("d1") // the next one works
	})
}
