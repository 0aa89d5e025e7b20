//go:build cgo

package audio

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gen2brain/malgo"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// nullBackend is miniaudio's null backend. malgo.BackendNull (13) is the
// *custom* backend in malgo v0.11.24, whose enum lacks "custom".
var nullBackend = []malgo.Backend{malgo.Backend(14)}

func TestListCaptureDevicesNull(t *testing.T) {
	devs, err := listCaptureDevices(nullBackend)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) == 0 || devs[0].Name != nullDeviceName || devs[0].ID == "" {
		t.Fatalf("devices %+v", devs)
	}
}

// TestNullCapture: the cgo wiring starts, delivers 20 ms blocks of zeros
// and stops. Counts are lower bounds only: the null device is paced by a
// timer.
func TestNullCapture(t *testing.T) {
	for _, rate := range []int{16000, 48000} {
		t.Run(strconv.Itoa(rate)+"Hz", func(t *testing.T) {
			src, err := newSource("mic", Config{SampleRate: rate}, sensors.Env{}, nullBackend, true)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan sensors.Sample, 64)
			errc := make(chan error, 1)
			go func() { errc <- src.Run(ctx, out) }()
			const want = 10
			for n := 0; n < want; {
				select {
				case s := <-out:
					if s.Class != sensors.Audio || len(s.Data) != 2*rate/50 || s.Duration != 20*time.Millisecond {
						t.Fatalf("block: class %v, %d bytes, %v", s.Class, len(s.Data), s.Duration)
					}
					for _, b := range s.Data {
						if b != 0 {
							t.Fatal("null device produced non-zero PCM")
						}
					}
					n++
				case err := <-errc:
					t.Fatalf("Run ended: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("no audio from the null device")
				}
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatalf("Run after cancel: %v", err)
			}
			info := src.Info()
			if info.Rate != float64(rate) || info.Channels != 1 || info.Class != sensors.Audio {
				t.Fatalf("info %+v", info)
			}
		})
	}
}

func TestRejectNullDevice(t *testing.T) {
	src, err := newSource("mic", Config{}, sensors.Env{}, nullBackend, false)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Run(context.Background(), make(chan sensors.Sample))
	if err == nil || !retry.IsPermanent(err) || !strings.Contains(err.Error(), nullDeviceName) {
		t.Fatalf("Run = %v, want a permanent refusal of the null device", err)
	}
}

func TestUnknownDevice(t *testing.T) {
	src, _ := newSource("mic", Config{Device: "hw:9,9"}, sensors.Env{}, nullBackend, true)
	err := src.Run(context.Background(), make(chan sensors.Sample))
	if err == nil || !strings.Contains(err.Error(), `"hw:9,9" not found`) {
		t.Fatalf("Run = %v", err)
	}
}

// TestALSANullPCM exercises the production backend (ALSA) where the machine
// has libasound and its "null" PCM (Debian's default alsa.conf): named
// explicitly it captures; reached through "default" it is refused.
func TestALSANullPCM(t *testing.T) {
	devs, err := ListCaptureDevices()
	if err != nil {
		t.Skip("no ALSA here:", err)
	}
	found := false
	for _, d := range devs {
		found = found || d.ID == "null"
	}
	if !found {
		t.Skipf("no ALSA null PCM among %+v", devs)
	}
	src, err := New("mic", Config{Device: "null"}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan sensors.Sample, 8)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	for range 5 {
		select {
		case s := <-out:
			if len(s.Data) != 640 {
				t.Fatalf("block of %d bytes", len(s.Data))
			}
		case err := <-errc:
			t.Fatalf("Run: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no audio from ALSA null")
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(devs) == 1 {
		def, _ := New("mic", Config{}, sensors.Env{})
		if err := def.Run(context.Background(), make(chan sensors.Sample)); !retry.IsPermanent(err) {
			t.Fatalf("default = ALSA null: Run = %v, want a permanent refusal", err)
		}
	}
}
