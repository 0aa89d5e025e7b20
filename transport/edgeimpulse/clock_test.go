package edgeimpulse_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/timesync"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

// TestSampleTimeAndFiles: a board without a real-time clock. Before NTP has
// synchronized the clock, a sample's signed file carries no iat (its wall
// time, the last shutdown's, would be months off and cannot be corrected
// under the signature); once synchronized, iat is the capture's wall time.
// The recording is written into the spool, never to the link's state
// directory (here a path no file can be made under, which the earlier temp
// file needed).
func TestSampleTimeAndFiles(t *testing.T) {
	src := timesync.NewFake(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	notADir := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	eachEncoding(t, rigOpts{time: timesync.New(src, timesync.Options{}), stateDir: notADir}, func(t *testing.T, r *rig) {
		req := eitest.SampleRequest{Sensor: "accel", Label: "idle", Length: 200, Interval: 10}
		sample := func(what string) eitest.Upload {
			t.Helper()
			n := len(r.srv.Uploads())
			if got := r.sampleCycle(req); !slices.Equal(got, fullCycle) {
				t.Fatalf("%s: messages %v, want %v (error %q)", what, got, fullCycle, r.lastSampleError())
			}
			ups := r.srv.Uploads()[n:]
			if len(ups) != 1 || ups[0].File == nil {
				t.Fatalf("%s: uploads %+v", what, ups)
			}
			return ups[0]
		}
		src.SetSynced(false)
		src.Advance(2 * time.Second) // past the synchronization cache
		if u := sample("before sync"); u.File.IAT != 0 {
			t.Errorf("before sync: iat %d (%v), want none", u.File.IAT, time.Unix(u.File.IAT, 0).UTC())
		}
		src.Step(9 * 30 * 24 * time.Hour) // NTP's step to the true time
		src.SetSynced(true)
		src.Advance(2 * time.Second)
		wall, _ := src.Read()
		if u := sample("after sync"); u.File.IAT != wall.Unix() {
			t.Errorf("after sync: iat %d, want the capture's wall time %d", u.File.IAT, wall.Unix())
		}
	})
}
