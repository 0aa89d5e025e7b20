package camserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
)

// TestTrustAuthorizeHTTPStatusIsRetried: a 404 or 405 at authorize is what
// a proxy or a server being redeployed answers for minutes; it made the link
// failed for good. It is retried with the normal backoff now, and the status
// says why meanwhile.
func TestTrustAuthorizeHTTPStatusIsRetried(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := newServer(t, camservertest.Options{})
			srv.FailNext("/authorize.json", status, 3)
			r := startRig(t, rigOpts{srv: srv})
			agenttest.Eventually(t, "the link up after the refusals", func() bool {
				st := r.sup.Status()
				if st.State == supervisor.Failed {
					t.Fatalf("link failed for good: %s", st.LastError)
				}
				return st.State == supervisor.Up
			})
			if got := srv.Calls("/authorize.json"); got < 4 {
				t.Errorf("authorize called %d times, want the 3 refusals and a success", got)
			}
			if st := r.sup.Status(); st.Reconnects < 3 || !strings.Contains(st.LastError, strconv.Itoa(status)) {
				t.Errorf("status = %+v, want 3 retries and the last error naming HTTP %d", st, status)
			}
		})
	}
}

// TestTrustCAFileMissingAtRedial: an operator replacing the certificate
// leaves ca_file missing for a moment. A re-dial then made the link failed
// for good; now it keeps the CA read before (and says so), and a ca_file
// missing at the first dial is retried until it appears.
func TestTrustCAFileMissingAtRedial(t *testing.T) {
	t.Run("redial", func(t *testing.T) {
		var ca string
		r := startRig(t, rigOpts{tls: true, cfg: func(c *camserver.Config) { ca = c.CAFile }})
		agenttest.Eventually(t, "stream frames", func() bool { return r.frames.n() >= 2 })
		pem, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(ca); err != nil {
			t.Fatal(err)
		}
		r.srv.FailNext("/heartBit.json", http.StatusBadGateway, 1) // ends the session: a re-dial
		agenttest.Eventually(t, "a second session with the CA read before", func() bool {
			st := r.sup.Status()
			if st.State == supervisor.Failed {
				t.Fatalf("link failed for good: %s", st.LastError)
			}
			return st.Sessions >= 2 && st.State == supervisor.Up
		})
		if d := r.stats.Details()["ca_file"]; !strings.Contains(d, "read before") {
			t.Errorf("ca_file detail = %q, want it to say the CA read before is used", d)
		}
		n := r.frames.n()
		agenttest.Eventually(t, "frames on the new session", func() bool { return r.frames.n() >= n+2 })
		if err := os.WriteFile(ca, pem, 0o644); err != nil {
			t.Fatal(err)
		}
		r.srv.FailNext("/heartBit.json", http.StatusBadGateway, 1)
		agenttest.Eventually(t, "a third session with the file read again", func() bool {
			st := r.sup.Status()
			return st.Sessions >= 3 && st.State == supervisor.Up && r.stats.Details()["ca_file"] == ""
		})
	})
	t.Run("first dial", func(t *testing.T) {
		srv := newServer(t, camservertest.Options{TLS: true})
		ca := filepath.Join(t.TempDir(), "later.pem")
		r := startRig(t, rigOpts{tls: true, srv: srv, cfg: func(c *camserver.Config) { c.CAFile = ca }})
		agenttest.Eventually(t, "a few retries", func() bool {
			st := r.sup.Status()
			if st.State == supervisor.Failed {
				t.Fatalf("link failed for good: %s", st.LastError)
			}
			return st.Reconnects >= 2 && strings.Contains(st.LastError, "ca_file")
		})
		if err := os.WriteFile(ca, srv.CAPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		agenttest.Eventually(t, "the link up once the file exists", func() bool { return r.sup.Status().State == supervisor.Up })
	})
}

// postRaw sends an addMsgs body the client would refuse (non-object params).
func postRaw(t *testing.T, srv *camservertest.Server, op *camserver.Client, msg map[string]any) {
	t.Helper()
	shash, _ := op.Shash()
	rt := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, n, a)
	}}
	defer rt.CloseIdleConnections()
	msg["shash"] = shash
	body, _ := json.Marshal(msg)
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/addMsgs.json", bytes.NewReader(body))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestTrustGetMsgsDatabaseFail: after one message with "params":"abc" the
// running server answers DATABASE_FAIL to every device's getMsgs until it
// restarts. That ended the whole session (the stream was off for minutes);
// now the poll backs off on its own while the stream and heartbeat go on.
func TestTrustGetMsgsDatabaseFail(t *testing.T) {
	r := startRig(t, rigOpts{})
	agenttest.Eventually(t, "stream frames", func() bool { return r.frames.n() >= 2 })
	op := operator(t, r.srv, "bad-sender")
	postRaw(t, r.srv, op, map[string]any{"msg": "x", "target": device, "params": "abc"})
	auths := r.srv.Stats().Authorizations
	agenttest.Eventually(t, "the failure in the status", func() bool {
		return strings.Contains(r.stats.Details()["messages"], "DATABASE_FAIL")
	})
	r.morePolls(t, 3) // the poll goes on, backing off
	n, beats := r.frames.n(), r.srv.Calls("/heartBit.json")
	agenttest.Eventually(t, "frames and heartbeats continue", func() bool {
		return r.frames.n() >= n+3 && r.srv.Calls("/heartBit.json") > beats
	})
	if st := r.sup.Status(); st.Sessions != 1 || st.Reconnects != 0 {
		t.Fatalf("supervisor %+v: the session ended over a getMsgs failure", st)
	}
	if got := r.srv.Stats().Authorizations; got != auths {
		t.Fatalf("re-authorized %d times over a getMsgs failure", got-auths)
	}
	// A server restart ends the state: messages are handled again (on the
	// same session: the server's database keeps it).
	if err := r.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	op = operator(t, r.srv, "viewer-app")
	if err := op.AddMsgs(context.Background(), camserver.Message{Msg: "note", Target: device}); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the message handled", func() bool { return r.stats.MsgsIn.Load() >= 1 })
	agenttest.Eventually(t, "the status cleared", func() bool { return r.stats.Details()["messages"] == "" })
}

// statusReply waits for the agent's status reply with the given id text.
func statusReply(t *testing.T, op *camserver.Client, want string) map[string]json.RawMessage {
	t.Helper()
	var got map[string]json.RawMessage
	stamp := camserver.SyncToken
	agenttest.Eventually(t, "status reply "+want, func() bool {
		msgs, err := op.GetMsgs(context.Background(), stamp, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			stamp = m.Stamp
			var p map[string]json.RawMessage
			if m.Msg == camserver.CmdStatus && m.Device == device && json.Unmarshal(m.Params, &p) == nil && string(p["id"]) == want {
				got = p
			}
		}
		return got != nil
	})
	return got
}

// TestTrustStatusEchoesNumericID: a numeric params.id came back as null
// (the id was a string field); it is echoed as sent now.
func TestTrustStatusEchoesNumericID(t *testing.T) {
	r := startRig(t, rigOpts{})
	op := operator(t, r.srv, "viewer-app")
	for _, id := range []string{`7`, `-12.5`, `"q1"`} {
		if err := op.AddMsgs(context.Background(), camserver.Message{Msg: camserver.CmdStatus, Target: device,
			Params: json.RawMessage(`{"id":` + id + `}`)}); err != nil {
			t.Fatal(err)
		}
		p := statusReply(t, op, id)
		if string(p["device"]) != `"`+device+`"` {
			t.Errorf("reply to id %s: device %s", id, p["device"])
		}
	}
}

// TestTrustCommandsFromAllowList: with commands.from set, another device's
// commands are ignored (and counted); a listed device's are handled.
func TestTrustCommandsFromAllowList(t *testing.T) {
	r := startRig(t, rigOpts{cfg: func(c *camserver.Config) { c.Commands.From = []string{"viewer-app"} }})
	ctx := context.Background()
	intruder := operator(t, r.srv, "other-board")
	if err := intruder.AddMsgs(ctx, camserver.Message{Msg: camserver.CmdSnapshot}); err != nil { // broadcast
		t.Fatal(err)
	}
	if err := intruder.AddMsgs(ctx, camserver.Message{Msg: camserver.CmdSnapshot, Target: device}); err != nil {
		t.Fatal(err)
	}
	viewer := operator(t, r.srv, "viewer-app")
	if err := viewer.AddMsgs(ctx, camserver.Message{Msg: camserver.CmdSnapshot, Target: device}); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the viewer's record", func() bool { return len(r.srv.Records()) >= 1 })
	agenttest.Eventually(t, "every message seen", func() bool { return r.stats.MsgsIn.Load() >= 3 })
	if got := len(r.srv.Records()); got != 1 {
		t.Errorf("%d records, want 1 (the other board's snapshots refused)", got)
	}
	if got := r.stats.Details()["commands_refused"]; got != "2" {
		t.Errorf("commands_refused = %q, want 2", got)
	}
}

// TestTrustCommandsRateLimited: another board's 3 requests of 100 snapshot
// messages made 300 records. Each sender now has a token bucket (counted
// drops), and the "message ignored" line is rate-limited.
func TestTrustCommandsRateLimited(t *testing.T) {
	logs := &logxtest.Buffer{}
	r := startRig(t, rigOpts{log: logs, cfg: func(c *camserver.Config) { c.Commands.PerMinute, c.Commands.Burst = 1, 3 }})
	ctx := context.Background()
	flooder := operator(t, r.srv, "other-board")
	const requests, per = 3, 100
	for range requests {
		msgs := make([]camserver.Message, per)
		for i := range msgs {
			msgs[i] = camserver.Message{Msg: camserver.CmdSnapshot, Target: device}
		}
		if err := flooder.AddMsgs(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	notes := make([]camserver.Message, 200)
	for i := range notes {
		notes[i] = camserver.Message{Msg: fmt.Sprintf("note-%d", i), Target: device}
	}
	if err := flooder.AddMsgs(ctx, notes...); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "every message seen", func() bool { return r.stats.MsgsIn.Load() >= requests*per+200 })
	agenttest.Eventually(t, "the spool drained", func() bool { return r.spool.Stats().Items == 0 })
	// At most the burst, plus one token if the test ran past a minute.
	if got := len(r.srv.Records()); got < 1 || got > 4 {
		t.Errorf("%d records from %d snapshot messages, want the burst of 3 (at most 4)", got, requests*per)
	}
	limited, _ := strconv.Atoi(r.stats.Details()["commands_rate_limited"])
	if limited < requests*per-4 {
		t.Errorf("commands_rate_limited = %d, want at least %d", limited, requests*per-4)
	}
	if n := strings.Count(logs.String(), "message ignored"); n < 1 || n > 2 {
		t.Errorf("%d \"message ignored\" lines for 200 messages, want 1 (2 if a minute passed)", n)
	}
	if n := strings.Count(logs.String(), "command dropped"); n > 2 {
		t.Errorf("%d \"command dropped\" lines, want at most 2", n)
	}
}

// TestTrustSessionEndClosesConnections: a session ended by one HTTP error
// (a 502 on heartBit) while a request still held a connection (the stream's
// reset being written, a record in flight) left that connection open with
// its goroutines: CloseIdleConnections spares busy connections. Close now
// ends every connection of the session's transports.
func TestTrustSessionEndClosesConnections(t *testing.T) {
	r := startRig(t, rigOpts{})
	agenttest.Eventually(t, "stream frames", func() bool { return r.frames.n() >= 2 })
	settle := func() int {
		var n int
		for range 100 {
			runtime.GC()
			n = runtime.NumGoroutine()
			time.Sleep(20 * time.Millisecond)
			if m := runtime.NumGoroutine(); m == n {
				break
			}
		}
		return n
	}
	base := settle()
	const ends = 10
	for i := range ends {
		sessions := r.sup.Status().Sessions
		r.srv.FailNext("/heartBit.json", http.StatusBadGateway, 1)
		agenttest.Eventually(t, fmt.Sprintf("session %d up", i+2), func() bool {
			st := r.sup.Status()
			return st.Sessions > sessions && st.State == supervisor.Up
		})
		n := r.frames.n()
		agenttest.Eventually(t, "frames on the new session", func() bool { return r.frames.n() >= n+2 })
	}
	if grow := settle() - base; grow > 8 {
		t.Errorf("goroutines grew by %d over %d sessions ended by a 502 (want bounded)", grow, ends)
	}
}
