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

	"github.com/edge-agent/edge-agent/agent/agenttest"
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
	agenttest.Eventually(t, "stream frames", func() bool { return r.frames.n() >= 2 })
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
	r.morePolls(t, 2)
	n := r.frames.n()
	agenttest.Eventually(t, "frames continue", func() bool { return r.frames.n() >= n+2 })
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
//
// Each process is a subtest: its link stops when the subtest ends, while
// the server and the state directory outlive it.
func TestRestartResumesAfterHandledMessages(t *testing.T) {
	srv := newServer(t, camservertest.Options{})
	state := t.TempDir()
	op := operator(t, srv, "viewer-app")
	ctx := context.Background()
	if !t.Run("first process", func(t *testing.T) {
		first := startRig(t, rigOpts{stateDir: state, srv: srv})
		for range 5 {
			if err := op.AddMsgs(ctx, camserver.Message{Msg: "note", Target: device}); err != nil {
				t.Fatal(err)
			}
		}
		agenttest.Eventually(t, "5 handled", func() bool { return first.stats.MsgsIn.Load() == 5 })
	}) {
		return
	}
	t.Run("second process", func(t *testing.T) {
		second := startRig(t, rigOpts{stateDir: state, srv: srv})
		second.handledOnce(t, op, "new note", 1) // and none of the 5 again
	})
}
