package camserver_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// TestRecovery breaks the session or the stream in each way the real server
// can, and checks that the agent comes back by itself: frames flow again,
// messages are handled exactly once across the break.
func TestRecovery(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(t *testing.T, r *rig, skew *atomic.Int64)
		reauth bool // a new authorize is expected
	}{
		{"session expiry", func(t *testing.T, r *rig, skew *atomic.Int64) {
			skew.Add(int64(11 * time.Minute)) // past the 10-minute dead-session timeout
			r.srv.Maintain()
		}, true},
		{"rate-limit deletion", func(t *testing.T, r *rig, _ *atomic.Int64) {
			r.srv.SetLimit(4, 1, true) // everyone is over budget at the next pass
			r.srv.Maintain()
			r.srv.SetLimit(4, 60000, true)
		}, true},
		{"stream reset", func(t *testing.T, r *rig, _ *atomic.Int64) {
			r.srv.ResetStreams()
		}, false},
		{"stalled window", func(t *testing.T, r *rig, _ *atomic.Int64) {
			opened := r.srv.Stats().StreamsOpened
			r.srv.Stall(device, true)
			agenttest.Eventually(t, "watchdog reopen", func() bool { return r.srv.Stats().StreamsOpened > opened })
			r.srv.Stall(device, false)
		}, false},
		{"server restart", func(t *testing.T, r *rig, _ *atomic.Int64) {
			// Sessions live in the server's database and survive a restart:
			// the connections drop, the stream is reopened on the same session.
			if err := r.srv.Restart(); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var skew atomic.Int64
			r := startRig(t, rigOpts{srvOpts: camservertest.Options{Now: func() time.Time {
				return time.Now().Add(time.Duration(skew.Load()))
			}}})
			ctx := context.Background()
			agenttest.Eventually(t, "stream frames", func() bool { return r.frames.n() >= 2 })
			op := operator(t, r.srv, "viewer-app")
			if err := op.AddMsgs(ctx, camserver.Message{Msg: "before", Target: device}); err != nil {
				t.Fatal(err)
			}
			agenttest.Eventually(t, "first message", func() bool { return r.stats.MsgsIn.Load() == 1 })
			auths, opened := r.srv.Stats().Authorizations, r.srv.Stats().StreamsOpened

			tc.fault(t, r, &skew)
			n := r.frames.n()

			if tc.reauth {
				agenttest.Eventually(t, "re-authorize", func() bool { return r.srv.Stats().Authorizations > auths })
			}
			agenttest.Eventually(t, "stream reopened", func() bool { return r.srv.Stats().StreamsOpened > opened })
			agenttest.Eventually(t, "frames again", func() bool { return r.frames.n() >= n+2 })
			op = operator(t, r.srv, "viewer-app") // the old operator session may be gone too
			// "after" handled, and "before" not again across the break.
			r.handledOnce(t, op, "after", 2)
			for i, f := range r.frames.all() {
				if !r.isFrame(f) {
					t.Fatalf("frame %d is not a camera JPEG", i)
				}
			}
		})
	}
}

// TestSpooledRecordDelivered: a still captured while offline (already in the
// spool when the link starts) reaches the server as a record.
func TestSpooledRecordDelivered(t *testing.T) {
	jpeg := []byte("\xff\xd8 offline still \xff\xd9")
	r := startRig(t, rigOpts{prespool: func(sp *spool.Spool) {
		if _, err := sp.Put("record", map[string]string{"meta": "JPEG"}, bytes.NewReader(jpeg)); err != nil {
			t.Fatal(err)
		}
	}, cfg: func(c *camserver.Config) { c.Stream.Sensor = "" }})
	agenttest.Eventually(t, "record", func() bool { return len(r.srv.Records()) == 1 })
	if rec := r.srv.Records()[0]; !bytes.Equal(rec.Data, jpeg) || rec.Meta != "JPEG" || rec.Device != device {
		t.Fatalf("record = %+v", rec)
	}
	agenttest.Eventually(t, "spool emptied", func() bool { return r.spool.Stats().Items == 0 })
}

// TestMotionStream pushes accelerometer windows as DEFLATE_JSON frames.
func TestMotionStream(t *testing.T) {
	r := startRig(t, rigOpts{cfg: func(c *camserver.Config) {
		c.Stream = camserver.Stream{Sensor: "accel", Subproto: camserver.SubprotoDeflateJSON, Delta: c.Stream.Delta, Start: "auto"}
	}})
	agenttest.Eventually(t, "motion frames", func() bool { return r.frames.n() >= 2 })
	for i, f := range r.frames.all() {
		b, err := io.ReadAll(flate.NewReader(bytes.NewReader(f)))
		if err != nil {
			t.Fatalf("frame %d: inflate: %v", i, err)
		}
		var w camserver.MotionWindow
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(w.Rows) == 0 || len(w.Rows[0]) != 3 || len(w.Axes) != 3 || w.Rate != 100 {
			t.Fatalf("frame %d: window %+v", i, w)
		}
	}
}
