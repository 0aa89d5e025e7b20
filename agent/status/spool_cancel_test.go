package status_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/status"
)

// TestSpoolCancelled: the items a user cancelled in the console are counted
// in /status and /metrics, beside those the peer refused.
func TestSpoolCancelled(t *testing.T) {
	snap := snapshot()
	snap.Links = append(snap.Links, status.LinkStatus{Name: "fio", Kind: "frameio", State: "up",
		Spool: &status.SpoolStatus{Items: 1, Cancelled: 3}})
	srv := httptest.NewServer(status.New(func() status.Snapshot { return snap }, nil).Handler())
	defer srv.Close()
	body, _ := get(t, srv, "/status")
	metrics, _ := get(t, srv, "/metrics")
	if !strings.Contains(body, `"cancelled": 3`) {
		t.Errorf("/status lacks the cancelled count: %s", body)
	}
	if !strings.Contains(metrics, `edge_agent_spool_cancelled_total{link="fio"} 3`) {
		t.Errorf("/metrics lacks edge_agent_spool_cancelled_total for fio")
	}
}
