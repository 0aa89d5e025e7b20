package camserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
)

// TestPoisonedMessageQueue: another device stores a message with bare-string
// params, which (as the server's source reads) makes every getMsgs fail with
// JSON_PARSER_FAIL until it expires. The agent must keep its session, keep
// streaming and keep polling (slowly) instead of reconnecting in a loop.
// TestTrustGetMsgsDatabaseFail covers what the running server does instead.
func TestPoisonedMessageQueue(t *testing.T) {
	r := startRig(t, rigOpts{srvOpts: camservertest.Options{PoisonParserFail: true}})
	waitFor(t, "stream frames", func() bool { return r.frames.n() >= 2 })
	op := operator(t, r.srv, "bad-sender")
	shash, _ := op.Shash()
	// The client refuses non-object params, so post the request by hand.
	rt := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, n, a)
	}}
	defer rt.CloseIdleConnections()
	body, _ := json.Marshal(map[string]any{"shash": shash, "msg": "x", "target": device, "params": "bare"})
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL()+"/addMsgs.json", bytes.NewReader(body))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	auths := r.srv.Stats().Authorizations
	polls := r.srv.Calls("/getMsgs.json") + r.srv.Calls("/getMsgsAndSync.json")
	waitFor(t, "polls continue", func() bool {
		return r.srv.Calls("/getMsgs.json")+r.srv.Calls("/getMsgsAndSync.json") >= polls+2
	})
	n := r.frames.n()
	waitFor(t, "frames continue", func() bool { return r.frames.n() >= n+2 })
	if got := r.srv.Stats().Authorizations; got != auths {
		t.Fatalf("the agent re-authorized %d times over a poisoned queue", got-auths)
	}
	if r.sup.Status().Sessions != 1 {
		t.Fatalf("sessions = %d, want 1 (no reconnect loop)", r.sup.Status().Sessions)
	}
	if r.stats.MsgsIn.Load() != 0 {
		t.Fatal("a message was handled from a queue the server cannot list")
	}
}

// TestRestartResumesAfterHandledMessages: a new agent process (new link,
// same state directory) handles only messages it has not handled before.
func TestRestartResumesAfterHandledMessages(t *testing.T) {
	state := t.TempDir()
	first := startRig(t, rigOpts{stateDir: state})
	op := operator(t, first.srv, "viewer-app")
	ctx := context.Background()
	for range 5 {
		if err := op.AddMsgs(ctx, camserver.Message{Msg: "note", Target: device}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "5 handled", func() bool { return first.stats.MsgsIn.Load() == 5 })
	first.stop()

	second := startRig(t, rigOpts{stateDir: state, srv: first.srv})
	if err := op.AddMsgs(ctx, camserver.Message{Msg: "note", Target: device}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new message", func() bool { return second.stats.MsgsIn.Load() >= 1 })
	polls := second.srv.Calls("/getMsgs.json") + second.srv.Calls("/getMsgsAndSync.json")
	waitFor(t, "more polls", func() bool {
		return second.srv.Calls("/getMsgs.json")+second.srv.Calls("/getMsgsAndSync.json") >= polls+3
	})
	if got := second.stats.MsgsIn.Load(); got != 1 {
		t.Fatalf("after restart handled %d, want 1", got)
	}
}
