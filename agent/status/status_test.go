package status_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/status"
)

func snapshot() status.Snapshot {
	return status.Snapshot{
		Device:  status.Device{ID: "b8:27:eb:00:00:01", Name: "pi-lab-01", Type: "RASPBERRY_PI"},
		Version: "1.2.3",
		Links: []status.LinkStatus{{Name: "studio", Kind: "edgeimpulse", State: "backoff", Since: time.Unix(1e9, 0),
			LastError: "dial: connection refused", Reconnects: 3, Details: map[string]string{"paused": "true"},
			Spool: &status.SpoolStatus{Items: 2, Bytes: 2048}}},
		Sensors: []status.SensorStatus{{Name: "accel", Kind: "iio", Class: "motion", State: "running", Subscribers: 2, Samples: 500, Dropped: 7}},
	}
}

func get(t *testing.T, srv *httptest.Server, path string) (string, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return string(b), resp.Header.Get("Content-Type")
}

func TestStatusJSONFollowsTheContract(t *testing.T) {
	srv := httptest.NewServer(status.New(snapshot, nil).Handler())
	defer srv.Close()
	body, ctype := get(t, srv, "/status")
	if ctype != "application/json" {
		t.Errorf("content type %q", ctype)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	l := doc["links"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "kind", "state", "since", "last_error"} {
		if _, ok := l[k]; !ok {
			t.Errorf("link lacks %q: %v", k, l)
		}
	}
	s := doc["sensors"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "kind", "state", "subscribers", "dropped"} {
		if _, ok := s[k]; !ok {
			t.Errorf("sensor lacks %q: %v", k, s)
		}
	}
	if doc["device"].(map[string]any)["type"] != "RASPBERRY_PI" {
		t.Errorf("device = %v", doc["device"])
	}
}

func TestMetrics(t *testing.T) {
	srv := httptest.NewServer(status.New(snapshot, nil).Handler())
	defer srv.Close()
	body, _ := get(t, srv, "/metrics")
	for _, want := range []string{
		`edge_agent_link_state{kind="edgeimpulse",link="studio",state="backoff"} 1`,
		`edge_agent_link_state{kind="edgeimpulse",link="studio",state="up"} 0`,
		`edge_agent_link_reconnects_total{kind="edgeimpulse",link="studio"} 3`,
		`edge_agent_link_detail{key="paused",link="studio",value="true"} 1`,
		`edge_agent_spool_items{link="studio"} 2`,
		`edge_agent_sensor_dropped_total{kind="iio",sensor="accel"} 7`,
		`edge_agent_sensor_samples_total{kind="iio",sensor="accel"} 500`,
		`edge_agent_build_info{version="1.2.3"} 1`,
		"go_goroutines", "process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestPageAndHealth(t *testing.T) {
	srv := httptest.NewServer(status.New(snapshot, nil).Handler())
	defer srv.Close()
	body, ctype := get(t, srv, "/")
	if !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, "pi-lab-01") ||
		!strings.Contains(body, `class="backoff"`) || !strings.Contains(body, "connection refused") {
		t.Errorf("page:\n%s", body)
	}
	if body, _ := get(t, srv, "/healthz"); body != "ok\n" {
		t.Errorf("healthz %q", body)
	}
	resp, _ := http.Get(srv.URL + "/nope")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("/nope = %d", resp.StatusCode)
	}
}

// TestPprofOnlyWhenEnabled: the profiler is opt-in (status.pprof).
func TestPprofOnlyWhenEnabled(t *testing.T) {
	off := httptest.NewServer(status.New(snapshot, nil).Handler())
	defer off.Close()
	resp, err := off.Client().Get(off.URL + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("profiler served without being enabled: %s", resp.Status)
	}
	s := status.New(snapshot, nil)
	s.EnablePprof()
	on := httptest.NewServer(s.Handler())
	defer on.Close()
	if body, _ := get(t, on, "/debug/pprof/heap?debug=1"); !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile: %.80q", body)
	}
	if body, _ := get(t, on, "/debug/pprof/"); !strings.Contains(body, "goroutine") {
		t.Errorf("index: %.80q", body)
	}
}

func TestReloadSummary(t *testing.T) {
	for _, tc := range []struct {
		st   status.ReloadStatus
		want string
	}{
		{status.ReloadStatus{}, "nothing changed"},
		{status.ReloadStatus{Error: "config.yaml:3: links[0].kind: unknown"}, "refused, nothing changed: config.yaml:3: links[0].kind: unknown"},
		{status.ReloadStatus{Links: status.ReloadChanges{Restarted: []string{"rtm"}, Added: []string{"a", "b"}},
			Sensors: status.ReloadChanges{Removed: []string{"mic"}, Unchanged: []string{"cam"}}},
			"1 link restarted, 2 links added, 1 sensor removed"},
		{status.ReloadStatus{Applied: []string{"rules", "log.level"}}, "applied: rules, log.level"},
		{status.ReloadStatus{NeedsRestart: []string{"status", "log.format"}}, "nothing changed; at the next restart: status, log.format"},
		{status.ReloadStatus{Sensors: status.ReloadChanges{Restarted: []string{"cam", "mic"}}, Applied: []string{"rules"},
			NeedsRestart: []string{"status"}}, "2 sensors restarted; applied: rules; at the next restart: status"},
		{status.ReloadStatus{Inference: status.ReloadChanges{Restarted: []string{"people"}, Added: []string{"a", "b"}, Removed: []string{"c"},
			Unchanged: []string{"d"}}}, "1 model restarted, 2 models added, 1 model removed"},
	} {
		if got := tc.st.Summary(); got != tc.want {
			t.Errorf("Summary of %+v = %q, want %q", tc.st, got, tc.want)
		}
	}
}
