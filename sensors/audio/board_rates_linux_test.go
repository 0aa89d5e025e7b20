//go:build vboard && cgo

package audio

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/vboard"
	"github.com/edge-agent/edge-agent/sensors"
)

// listed returns the listing's entry for id.
func listed(t *testing.T, id string) Device {
	t.Helper()
	devs, err := ListCaptureDevices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("%s not listed: %+v", id, devs)
	return Device{}
}

// TestBoardListRates (issue 14, point 6): the listing asks each card device
// itself for its rates. An idle loopback device offers the range the driver
// takes, 16 kHz among them; once the cable's other end plays at 48 kHz
// through hw:, the device offers only 48000, as a USB microphone's hw:
// device offers only its own rates (miniaudio's default enumeration would
// have opened it through dsnoop and reported dsnoop's 48000 in both cases).
// While the microphone captures from it, it is busy and the listing says
// so instead of waiting. `edge-agent sensors -json` shows the same.
func TestBoardListRates(t *testing.T) {
	c := loopback(t)
	idle := listed(t, "hw:Loopback,1")
	t.Logf("idle hw:Loopback,1 offers %v", idle.Rates)
	if idle.RatesError != "" || !slices.IsSorted(idle.Rates) {
		t.Fatalf("idle: rates %v, error %q", idle.Rates, idle.RatesError)
	}
	for _, r := range []int{8000, 16000, 44100, 48000} {
		if !slices.Contains(idle.Rates, r) {
			t.Errorf("idle hw:Loopback,1 offers %v, not %d", idle.Rates, r)
		}
	}

	wav := filepath.Join(t.TempDir(), "tone48k.wav")
	if err := os.WriteFile(wav, vboard.ToneWAV(toneHz, toneAmp, 48000, 30), 0o644); err != nil {
		t.Fatal(err)
	}
	play(t, c, 0, "hw", wav)
	if fixed := listed(t, "hw:Loopback,1"); !slices.Equal(fixed.Rates, []int{48000}) || fixed.RatesError != "" {
		t.Errorf("cable at 48 kHz: hw:Loopback,1 offers %v (error %q), want only 48000", fixed.Rates, fixed.RatesError)
	}
	if other := listed(t, "hw:Loopback,0"); !slices.Contains(other.Rates, 16000) {
		t.Errorf("hw:Loopback,0 (its other end idle) offers %v, want 16000 among them", other.Rates)
	}

	agent := os.Getenv("VBOARD_AGENT_CGO")
	if agent == "" {
		t.Fatal("VBOARD_AGENT_CGO is not set")
	}
	out, err := exec.Command(agent, "sensors", "-json").Output()
	if err != nil {
		t.Fatalf("%s sensors -json: %v", agent, err)
	}
	type entry struct {
		ID    string `json:"id"`
		Rates []int  `json:"rates"`
	}
	var inv struct {
		Audio []entry `json:"audio"`
	}
	if err := json.Unmarshal(out, &inv); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	i := slices.IndexFunc(inv.Audio, func(a entry) bool { return a.ID == "hw:Loopback,1" })
	if i < 0 || !slices.Equal(inv.Audio[i].Rates, []int{48000}) {
		t.Errorf("edge-agent sensors -json: hw:Loopback,1 not listed with rates [48000]:\n%s", out)
	}

	// Busy: the microphone captures from hw:Loopback,1 (one substream).
	src, err := New("mic", Config{Device: "hw:Loopback,1,0", SampleRate: boardRate}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	samples := make(chan sensors.Sample, 64)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, samples) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-samples:
	case err := <-errc:
		errc <- err
		t.Fatalf("capture ended: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no audio from hw:Loopback,1 in 60 s")
	}
	start := time.Now()
	busy := listed(t, "hw:Loopback,1")
	t.Logf("listing a busy device took %v", time.Since(start).Round(time.Millisecond))
	if busy.Rates != nil || !strings.HasPrefix(busy.RatesError, "busy") {
		t.Errorf("while captured: rates %v, error %q; want busy", busy.Rates, busy.RatesError)
	}
	if native := src.Info().NativeRate; native != 48000 {
		t.Errorf("the microphone captures at %v Hz, want the 48000 the listing showed", native)
	}
}
