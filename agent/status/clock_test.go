package status_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/status"
)

// TestClockSynced: /status and /metrics say whether the wall clock is
// synchronized, so a board without a real-time clock that has not reached
// NTP yet can be told apart from one that has.
func TestClockSynced(t *testing.T) {
	for _, synced := range []bool{false, true} {
		snap := snapshot()
		snap.Clock.Synced = synced
		srv := httptest.NewServer(status.New(func() status.Snapshot { return snap }, nil).Handler())
		body, _ := get(t, srv, "/status")
		metrics, _ := get(t, srv, "/metrics")
		srv.Close()
		wantJSON, wantMetric := `"synced": false`, "edge_agent_clock_synced 0"
		if synced {
			wantJSON, wantMetric = `"synced": true`, "edge_agent_clock_synced 1"
		}
		if !strings.Contains(body, wantJSON) {
			t.Errorf("synced=%v: /status lacks %s: %s", synced, wantJSON, body)
		}
		if !strings.Contains(metrics, wantMetric) {
			t.Errorf("synced=%v: /metrics lacks %q", synced, wantMetric)
		}
	}
}
