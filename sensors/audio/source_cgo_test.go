//go:build cgo

package audio

import (
	"context"
	"runtime"
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

// nullDeviceName is what miniaudio's null backend calls its capture device.
const nullDeviceName = "NULL Capture Device"

// TestListCaptureDevices: the cards' devices from /proc/asound first, as
// hw:CARD,DEV, then the backend's own PCMs.
func TestListCaptureDevices(t *testing.T) {
	devs, err := listCaptureDevices(writeProc(t, testCards[:2]), nullBackend)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 3 || devs[0].ID != "hw:Loopback,0" || devs[1].ID != "hw:Loopback,1" ||
		devs[2].Name != nullDeviceName || devs[2].Card != -1 || devs[2].ID == "" {
		t.Fatalf("devices %+v", devs)
	}
}

// TestNullCapture: the cgo wiring starts, delivers 20 ms blocks of zeros
// and stops. Counts are lower bounds only: the null device is paced by a
// timer.
func TestNullCapture(t *testing.T) {
	for _, rate := range []int{16000, 48000} {
		t.Run(strconv.Itoa(rate)+"Hz", func(t *testing.T) {
			src, err := newSource("mic", Config{SampleRate: rate}, sensors.Env{}, nullBackend, t.TempDir())
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

// TestUnknownDevice: a card that is not there is a transient error naming
// what is there; a device the card lacks is permanent.
func TestUnknownDevice(t *testing.T) {
	root := writeProc(t, testCards[:2])
	for _, tc := range []struct {
		device, want string
		permanent    bool
	}{
		{"hw:9,9", `no sound card "9"; capture devices: hw:Loopback,0 (Loopback: Loopback PCM), hw:Loopback,1`, false},
		{"hw:Loopback,4", "card 1 [Loopback] has no capture device 4", true},
	} {
		src, err := newSource("mic", Config{Device: tc.device}, sensors.Env{}, nullBackend, root)
		if err != nil {
			t.Fatal(err)
		}
		err = src.Run(context.Background(), make(chan sensors.Sample))
		if err == nil || !strings.Contains(err.Error(), tc.want) || retry.IsPermanent(err) != tc.permanent {
			t.Errorf("device %q: Run = %v; want %q (permanent %v)", tc.device, err, tc.want, tc.permanent)
		}
	}
	if _, err := newSource("mic", Config{Device: "hw:1,x"}, sensors.Env{}, nullBackend, root); err == nil {
		t.Error("New accepted hw:1,x")
	}
}

func TestALSADeviceID(t *testing.T) {
	id, err := alsaDeviceID("hw:1,0")
	if err != nil || deviceIDString(id) != "hw:1,0" {
		t.Fatalf("alsaDeviceID = %q, %v", deviceIDString(id), err)
	}
	if _, err := alsaDeviceID(strings.Repeat("x", 256)); err == nil {
		t.Fatal("a 256-byte PCM name fits in ALSA's char[256]")
	}
}

// needALSA returns ALSA's capture devices, or skips the test where
// miniaudio cannot load libasound.so.2 for this architecture: a machine
// without libasound2, or qemu-user (make test-arm) unless the target
// architecture's libasound2 is installed too.
func needALSA(t *testing.T) []Device {
	t.Helper()
	devs, err := ListCaptureDevices()
	if err != nil {
		deb := map[string]string{"arm": "armhf"}[runtime.GOARCH]
		if deb == "" {
			deb = runtime.GOARCH
		}
		t.Skipf("needs ALSA's libasound.so.2 for %s (Debian package libasound2:%s): %v", runtime.GOARCH, deb, err)
	}
	return devs
}

// TestALSANullPCM exercises the production backend (ALSA) where the machine
// has libasound and its "null" PCM (Debian's default alsa.conf): named, it
// captures zeros.
func TestALSANullPCM(t *testing.T) {
	devs := needALSA(t)
	found := false
	for _, d := range devs {
		found = found || d.ID == "null"
	}
	if !found {
		t.Skipf("needs ALSA's null PCM, which Debian's alsa.conf (package libasound2-data) defines; ALSA lists only %+v", devs)
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
}

// TestALSADefaultWithoutCard: on a machine without a sound card, "default"
// is ALSA's default PCM, which fails to open; it is never the null PCM
// (which would record silence). The error says there is no card.
func TestALSADefaultWithoutCard(t *testing.T) {
	needALSA(t)
	cards, err := readCards(ProcRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(cards) != 0 {
		t.Skipf("needs a machine without sound cards: ALSA's default PCM opens one of the %d cards in %s here", len(cards), ProcRoot)
	}
	src, err := New("mic", Config{}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Run(context.Background(), make(chan sensors.Sample))
	if err == nil || !strings.Contains(err.Error(), "open ALSA's default PCM") || !strings.Contains(err.Error(), "no sound card is present") {
		t.Fatalf("Run = %v", err)
	}
}

// TestALSAUnknownPCM: a word that is neither a card nor a configured PCM is
// handed to ALSA, whose refusal comes back with what exists.
func TestALSAUnknownPCM(t *testing.T) {
	needALSA(t)
	src, err := newSource("mic", Config{Device: "no_such_pcm"}, sensors.Env{}, []malgo.Backend{malgo.BackendAlsa}, writeProc(t, testCards[:2]))
	if err != nil {
		t.Fatal(err)
	}
	err = src.Run(context.Background(), make(chan sensors.Sample))
	if err == nil || !strings.Contains(err.Error(), `open "no_such_pcm"`) || !strings.Contains(err.Error(), "capture devices: hw:Loopback,0") {
		t.Fatalf("Run = %v", err)
	}
}
