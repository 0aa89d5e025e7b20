package status_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/status"
)

// TestDeviceModelAndNativeRate: /status carries the board's model and a
// microphone's native rate, the page shows both, and neither appears when
// unknown (a PC without a device tree, a sensor that is not a microphone).
func TestDeviceModelAndNativeRate(t *testing.T) {
	snap := snapshot()
	snap.Device.Model = "Raspberry Pi 4 Model B Rev 1.4"
	snap.Sensors = append(snap.Sensors, status.SensorStatus{Name: "mic", Kind: "microphone", Class: "audio", State: "running", NativeRate: 48000})
	srv := httptest.NewServer(status.New(func() status.Snapshot { return snap }, nil).Handler())
	defer srv.Close()

	body, _ := get(t, srv, "/status")
	var doc struct {
		Device  map[string]any   `json:"device"`
		Sensors []map[string]any `json:"sensors"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Device["model"] != "Raspberry Pi 4 Model B Rev 1.4" || doc.Device["type"] != "RASPBERRY_PI" {
		t.Errorf("device %v", doc.Device)
	}
	if _, ok := doc.Sensors[0]["native_rate"]; ok {
		t.Errorf("a motion sensor shows a native rate: %v", doc.Sensors[0])
	}
	if doc.Sensors[1]["native_rate"] != 48000.0 {
		t.Errorf("microphone %v", doc.Sensors[1])
	}

	page, _ := get(t, srv, "/")
	for _, want := range []string{"type RASPBERRY_PI · Raspberry Pi 4 Model B Rev 1.4 ·", "audio · 48000 Hz native"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	plain := httptest.NewServer(status.New(snapshot, nil).Handler())
	defer plain.Close()
	if body, _ := get(t, plain, "/status"); strings.Contains(body, `"model"`) || strings.Contains(body, "native_rate") {
		t.Errorf("unknown model or rate shown: %s", body)
	}
}
