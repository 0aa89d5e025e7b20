package status_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/status"
)

// TestSensorStallsAreShown: a sensor the watchdog restarted shows its
// stalls and the last one (time and reason) in /status, its stall and
// restart counters in /metrics, and the reason on the page; a sensor that
// never stalled has no last_stall.
func TestSensorStallsAreShown(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	snap := func() status.Snapshot {
		return status.Snapshot{Sensors: []status.SensorStatus{
			{Name: "picam", Kind: "command", Class: "video", State: "running", Restarts: 3, Stalls: 2,
				LastStall: &status.StallStatus{At: at, Reason: "no sample for 3s (after 5400 in this run)"}},
			{Name: "accel", Kind: "iio", Class: "motion", State: "running"},
		}}
	}
	srv := httptest.NewServer(status.New(snap, nil).Handler())
	defer srv.Close()

	body, _ := get(t, srv, "/status")
	var doc struct {
		Sensors []map[string]json.RawMessage `json:"sensors"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	cam, accel := doc.Sensors[0], doc.Sensors[1]
	var last map[string]string
	if err := json.Unmarshal(cam["last_stall"], &last); err != nil {
		t.Fatalf("last_stall %s: %v", cam["last_stall"], err)
	}
	if string(cam["stalls"]) != "2" || string(cam["restarts"]) != "3" || len(last) != 2 ||
		last["at"] != "2026-03-01T12:00:00Z" || last["reason"] != "no sample for 3s (after 5400 in this run)" {
		t.Errorf("stalled sensor in /status: stalls %s restarts %s last_stall %s", cam["stalls"], cam["restarts"], cam["last_stall"])
	}
	if _, ok := accel["last_stall"]; ok || string(accel["stalls"]) != "0" {
		t.Errorf("sensor that never stalled: stalls %s last_stall %s", accel["stalls"], accel["last_stall"])
	}

	metrics, _ := get(t, srv, "/metrics")
	for _, want := range []string{
		`edge_agent_sensor_stalls_total{kind="command",sensor="picam"} 2`,
		`edge_agent_sensor_restarts_total{kind="command",sensor="picam"} 3`,
		`edge_agent_sensor_stalls_total{kind="iio",sensor="accel"} 0`,
		"# TYPE edge_agent_sensor_stalls_total counter",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	page, _ := get(t, srv, "/")
	if !strings.Contains(page, "no sample for 3s (after 5400 in this run)") {
		t.Error("the page does not show the last stall's reason")
	}
}
