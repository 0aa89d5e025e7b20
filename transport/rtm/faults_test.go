package rtm_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// TestFaultsLeadToNewSession runs the link under the real supervisor and
// applies each fault of the fake in turn; after each one a new session must
// reach ACTIVE and re-issue recording_start.
func TestFaultsLeadToNewSession(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	sup := runLink(t, e, e.cfg)
	agenttest.Eventually(t, "first ACTIVE session", func() bool {
		return activeSessions(e.fake) >= 1 && sup.Status().State == supervisor.Up
	})

	faults := []struct {
		name  string
		apply func(f *rtmtest.Server)
		after func(f *rtmtest.Server)
	}{
		{name: "drop socket", apply: (*rtmtest.Server).DropSockets},
		{name: "silence", apply: func(f *rtmtest.Server) { f.SetSilent(true) }, after: func(f *rtmtest.Server) { f.SetSilent(false) }},
		{name: "reject sdp", apply: func(f *rtmtest.Server) { f.SetRejectSDP(true); f.Terminate(rtm.CauseConnError) },
			after: func(f *rtmtest.Server) {
				agenttest.Eventually(t, "an SDP_ERROR session", func() bool {
					for _, s := range f.Sessions() {
						if s.Cause == rtm.CauseSDPError {
							return true
						}
					}
					return false
				})
				f.SetRejectSDP(false)
			}},
	}
	for _, cause := range []string{rtm.CauseConnError, rtm.CauseConnTimeout, rtm.CausePeerConnFailed,
		rtm.CauseServiceShutdown, rtm.CauseTwoTimer, rtm.CauseNoPacketReceived, rtm.CauseTermByClient,
		rtm.CauseSDPError, "SOMETHING_NEW"} {
		faults = append(faults, struct {
			name  string
			apply func(f *rtmtest.Server)
			after func(f *rtmtest.Server)
		}{name: "terminated " + cause, apply: func(f *rtmtest.Server) { f.Terminate(cause) }})
	}
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			before := activeSessions(e.fake)
			upBefore := sup.Status().Sessions
			tc.apply(e.fake)
			if tc.after != nil {
				// Wait until the fault took effect before lifting it.
				n := len(e.fake.Sessions())
				if tc.name == "silence" {
					agenttest.Eventually(t, "the agent to give up the silent socket", func() bool {
						ss := e.fake.Sessions()
						return len(ss) > n || ss[len(ss)-1].Ended
					})
				}
				tc.after(e.fake)
			}
			agenttest.Eventually(t, "a new ACTIVE session", func() bool {
				st := sup.Status()
				return activeSessions(e.fake) > before && st.Sessions > upBefore && st.State == supervisor.Up
			})
			agenttest.Eventually(t, "recording_start in the new session", func() bool {
				ss := e.fake.Sessions()
				return len(ss[len(ss)-1].Recordings) > 0
			})
		})
	}
	st := sup.Status()
	if st.Sessions < uint64(len(faults)+1) {
		t.Errorf("supervisor saw %d sessions, want >= %d", st.Sessions, len(faults)+1)
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(c *rtm.Config)
		permanent bool
	}{
		{name: "bad token", mutate: func(c *rtm.Config) { c.Token = "wrong" }, permanent: true},
		{name: "unknown sensor", mutate: func(c *rtm.Config) { c.Video = "nope" }, permanent: true},
		{name: "refused", mutate: func(c *rtm.Config) { c.URL = "ws://127.0.0.1:1/api/v2/io" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, time.Second)
			cfg := e.cfg
			tc.mutate(&cfg)
			link, err := rtm.New(cfg, e.deps, fastOpts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = link.Dial(t.Context())
			if err == nil {
				t.Fatal("dial succeeded")
			}
			if got := retry.IsPermanent(err); got != tc.permanent {
				t.Errorf("permanent = %v, want %v (err %v)", got, tc.permanent, err)
			}
			if e.fake.Token() != "" && strings.Contains(err.Error(), e.fake.Token()) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

// TestRESTAndManualRecording creates the session over api_url and checks
// that record.start: manual waits for StartRecording.
func TestRESTAndManualRecording(t *testing.T) {
	e := newEnv(t, 200*time.Millisecond)
	cfg := e.cfg
	cfg.URL = ""
	cfg.APIURL = e.fake.APIURL()
	cfg.Record.Start = "manual"
	link, err := rtm.New(cfg, e.deps, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := link.StartRecording(); !errors.Is(err, rtm.ErrNoSession) {
		t.Fatalf("StartRecording without a session = %v", err)
	}
	_ = link.StopRecording() // keep manual
	sess, err := link.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ss := e.fake.Sessions()
	if len(ss) != 1 || ss[0].ID != "sess-1" {
		t.Fatalf("sessions = %+v, want the REST session id sess-1", ss)
	}
	time.Sleep(300 * time.Millisecond) // give an (incorrect) auto start a chance to show
	if n := len(e.fake.Sessions()[0].Recordings); n != 0 {
		t.Fatalf("manual mode started %d recordings", n)
	}
	if err := link.StartRecording(); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "recording STARTED", func() bool { return e.stats.Details()["recording"] == rtm.RecordingStarted })
}

// TestRenegotiation: an offer from the service in sdp_update is answered
// and the media keeps flowing.
func TestRenegotiation(t *testing.T) {
	e := newEnv(t, time.Second)
	served := serveSession(t, manualLink(t, e))
	e.fake.Renegotiate()
	agenttest.Eventually(t, "the agent's answer", func() bool {
		return slices.Contains(e.fake.Sessions()[0].Received, rtm.TypeSDPUpdate)
	})
	frames := e.fake.Sessions()[0].VideoFrames
	agenttest.Eventually(t, "video after renegotiation", func() bool { return e.fake.Sessions()[0].VideoFrames > frames+15 })
	select {
	case err := <-served:
		t.Fatalf("session ended: %v", err)
	default:
	}
}
