package agent_test

import (
	"context"
	"sync"
	"testing"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/sensors"
)

// micSource stands in for a microphone: its Info reports the native rate
// once Run has "opened the device", as sensors/audio's Source does.
type micSource struct {
	mu     sync.Mutex
	native float64
}

func (m *micSource) Info() sensors.Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sensors.Info{Name: "mic", Kind: "microphone", Class: sensors.Audio, Rate: 16000, Channels: 1, NativeRate: m.native}
}

func (m *micSource) Run(ctx context.Context, out chan<- sensors.Sample) error {
	m.mu.Lock()
	m.native = 48000
	m.mu.Unlock()
	<-ctx.Done()
	return nil
}

// TestSnapshotDeviceAndNativeRate: /status names the board's model from the
// resolved config and a microphone's native rate once its device is open.
func TestSnapshotDeviceAndNativeRate(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Status.Listen = ""
	cfg.Device = config.Device{ID: "d8:3a:dd:01:02:03", Name: "bench", Type: "RASPBERRY_PI", Model: "Raspberry Pi 5 Model B Rev 1.0"}
	a, err := agent.New(&cfg, agent.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	mic := &micSource{}
	if err := a.Hub().Add(mic); err != nil {
		t.Fatal(err)
	}
	defer a.Hub().Close()
	s := a.Snapshot()
	if s.Device.Model != "Raspberry Pi 5 Model B Rev 1.0" || s.Device.ID != "d8:3a:dd:01:02:03" || s.Device.Type != "RASPBERRY_PI" {
		t.Errorf("device %+v", s.Device)
	}
	if len(s.Sensors) != 1 || s.Sensors[0].NativeRate != 0 {
		t.Fatalf("before the device is open: %+v", s.Sensors)
	}
	sub, err := a.Hub().Subscribe("mic", sensors.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// The hub starts Run for the first subscriber; Run "opens" at once.
	agenttest.Eventually(t, "the microphone's native rate in /status", func() bool {
		return a.Snapshot().Sensors[0].NativeRate == 48000
	})
}
