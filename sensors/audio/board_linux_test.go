//go:build vboard && cgo

// Board cases (scripts/vboard): the microphone against the real snd-aloop
// driver through the guest's libasound, as on a board. A tone played into
// one side of the loopback cable is captured from the other side by the real
// Source.

package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/cmplx"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gen2brain/malgo"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/internal/vboard"
	"github.com/edge-agent/edge-agent/sensors"
)

const (
	toneHz    = 440
	toneAmp   = 1000 // -30 dBFS: ALSA's default capture path for Loopback adds up to +30 dB (softvol)
	boardRate = 16000
	skipHead  = 5  // blocks dropped at the start (the cable's first period may be silence)
	analysed  = 50 // blocks analysed: 1 s
)

// loopback loads snd-aloop (one substream per device) and returns its card.
// A copy left loaded by another case is unloaded first, so the parameters
// given here apply.
func loopback(t *testing.T, params ...string) card {
	t.Helper()
	vboard.Modprobe(t, "snd-aloop", append([]string{"pcm_substreams=1"}, params...)...)
	var loop card
	vboard.WaitFor(t, 5*time.Second, func() error {
		cards, err := readCards(ProcRoot)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cards {
			if c.id == "Loopback" && len(c.capture) == 2 {
				loop = c
				return nil
			}
		}
		return fmt.Errorf("no Loopback card with two capture devices in %s/cards: %+v", ProcRoot, cards)
	})
	return loop
}

// writeTone writes a mono s16le WAV of a sine at toneHz, long enough to
// outlast the case (aplay is killed when it ends).
func writeTone(t *testing.T, seconds int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tone.wav")
	if err := os.WriteFile(p, vboard.ToneWAV(toneHz, toneAmp, boardRate, seconds), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// playTone plays the tone into the loopback's playback device dev with aplay
// (through plughw, so it fits whatever the capture side already set) and
// waits until the substream runs. aplay is killed when the case ends.
func playTone(t *testing.T, c card, dev int) {
	t.Helper()
	play(t, c, dev, "plughw", writeTone(t, 30))
}

// play plays wav into the loopback's playback device dev through the ALSA
// plugin layer plugin ("plughw" converts to what the cable already runs at;
// "hw" fixes the cable to the file's format, so the capture side then
// offers only that rate) and waits until the substream runs.
func play(t *testing.T, c card, dev int, plugin, wav string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command("aplay", "-q", "-D", fmt.Sprintf("%s:CARD=%s,DEV=%d,SUBDEV=0", plugin, c.id, dev), wav)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("aplay: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	status := fmt.Sprintf("%s/card%d/pcm%dp/sub0/status", ProcRoot, c.index, dev)
	deadline := time.After(20 * time.Second)
	for !substreamRunning(status) {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("aplay ended before playing: %v: %s", err, out.String())
		case <-deadline:
			t.Fatalf("%s never RUNNING", status)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// substreamRunning reports whether a PCM substream's status file says it
// is running (the kernel's own view, not the agent's).
func substreamRunning(status string) bool {
	b, err := os.ReadFile(status)
	return err == nil && strings.Contains(string(b), "state: RUNNING")
}

// captureSecond runs the real Source on device and returns one second of
// mono PCM after the first blocks. during runs once, while the device
// delivers.
func captureSecond(t *testing.T, device string, during func()) []int16 {
	t.Helper()
	pcm, _ := captureInfo(t, device, during)
	return pcm
}

// captureInfo is captureSecond that also returns the source's Info as it
// was while the device delivered.
func captureInfo(t *testing.T, device string, during func()) ([]int16, sensors.Info) {
	t.Helper()
	var info sensors.Info
	src, err := New("mic", Config{Device: device, SampleRate: boardRate}, sensors.Env{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan sensors.Sample, 8)
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- src.Run(ctx, out) }()
	var pcm []int16
	timeout := time.After(60 * time.Second)
	var first time.Duration
	for n := 0; n < skipHead+analysed; {
		select {
		case s := <-out:
			if len(s.Data) != 2*boardRate/50 || s.Class != sensors.Audio {
				t.Fatalf("block of %d bytes, class %v", len(s.Data), s.Class)
			}
			n++
			if n == 1 {
				first = time.Since(start)
			}
			if n == skipHead {
				info = src.Info()
				if during != nil {
					during()
				}
			}
			if n > skipHead {
				for i := 0; i+1 < len(s.Data); i += 2 {
					pcm = append(pcm, int16(binary.LittleEndian.Uint16(s.Data[i:])))
				}
			}
		case err := <-errc:
			t.Fatalf("device %q: Run ended: %v", device, err)
		case <-timeout:
			t.Fatalf("device %q: %d blocks in 60 s", device, n)
		}
	}
	captured := time.Since(start)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("device %q: Run after cancel: %v", device, err)
	}
	t.Logf("device %q: first block after %v, %v of audio after %v, closed after %v", device,
		first.Round(time.Millisecond), analysed*BlockDuration, captured.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return pcm, info
}

// spectrum is the power spectrum of pcm zero-padded to a power of two
// (radix-2 FFT: a DFT scan over every frequency is seconds of soft-float
// under TCG) and the width of one bin in Hz.
func spectrum(pcm []int16) ([]float64, float64) {
	n := 1
	for n < len(pcm) {
		n <<= 1
	}
	x := make([]complex128, n)
	for i, v := range pcm {
		x[i] = complex(float64(v), 0)
	}
	for i, j := 1, 0; i < n; i++ { // bit-reversal permutation
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j |= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			wk := complex(1, 0)
			for k := 0; k < size/2; k++ {
				a, b := x[start+k], wk*x[start+k+size/2]
				x[start+k], x[start+k+size/2] = a+b, a-b
				wk *= w
			}
		}
	}
	pow := make([]float64, n/2)
	for i := range pow {
		pow[i] = real(x[i])*real(x[i]) + imag(x[i])*imag(x[i])
	}
	return pow, float64(boardRate) / float64(n)
}

// checkTone fails unless pcm is dominated by the tone: the strongest
// frequency between 100 and 2000 Hz is 440 ± 5 Hz, the level is well above
// silence and the peak (± 3 bins) holds most of the energy.
func checkTone(t *testing.T, device string, pcm []int16) {
	t.Helper()
	var energy float64
	for _, x := range pcm {
		energy += float64(x) * float64(x)
	}
	rms := math.Sqrt(energy / float64(len(pcm)))
	pow, binHz := spectrum(pcm)
	peak := int(100 / binHz)
	for k := peak; k <= int(2000/binHz); k++ {
		if pow[k] > pow[peak] {
			peak = k
		}
	}
	best := float64(peak) * binHz
	if a, b, c := pow[peak-1], pow[peak], pow[peak+1]; a+c > 0 { // parabolic interpolation
		best += binHz * 0.5 * (a - c) / (a - 2*b + c)
	}
	var total, near float64
	for k, p := range pow[1:] {
		total += p
		if k+1 >= peak-3 && k+1 <= peak+3 {
			near += p
		}
	}
	share := near / total
	t.Logf("device %q: dominant %.1f Hz, RMS %.0f, share of energy %.2f", device, best, rms, share)
	if math.Abs(best-toneHz) > 5 {
		t.Fatalf("device %q: dominant frequency %.1f Hz, want %d ± 5 (RMS %.0f)", device, best, toneHz, rms)
	}
	if rms < toneAmp/10 {
		t.Fatalf("device %q: RMS %.1f: near silence", device, rms)
	}
	if share < 0.5 {
		t.Fatalf("device %q: the tone holds %.2f of the energy", device, share)
	}
}

// TestBoardLoopbackTone: a 440 Hz tone played into one side of snd-aloop is
// captured at 16 kHz from the other side through the ALSA names users give.
func TestBoardLoopbackTone(t *testing.T) {
	c := loopback(t)
	playTone(t, c, 0) // plays into device 0: device 1 captures it
	for _, device := range []string{"hw:Loopback,1,0", "plughw:CARD=Loopback,DEV=1"} {
		t.Run(device, func(t *testing.T) {
			checkTone(t, device, captureSecond(t, device, nil))
		})
	}
}

// TestBoardNativeRate (issue 14, point 6): a device that offers only 48 kHz
// (the loopback cable fixed at 48 kHz by a hw: player on the other end, as a
// USB microphone's hw: device is) is captured at its own rate and converted
// to 16 kHz by the source's low-pass resampler. The tone keeps its
// frequency; an 11 kHz tone, above 16 kHz's Nyquist, does not fold back to
// 5 kHz: -90 dB here, where miniaudio's own linear converter (the code
// before this case) let it through at -14.6 dB.
func TestBoardNativeRate(t *testing.T) {
	const native = 48000
	for _, tc := range []struct {
		name    string
		hz, amp float64
	}{{"440 Hz", toneHz, toneAmp}, {"11 kHz", 11000, 8000}} {
		t.Run(tc.name, func(t *testing.T) {
			c := loopback(t)
			wav := filepath.Join(t.TempDir(), "tone48k.wav")
			if err := os.WriteFile(wav, vboard.ToneWAV(tc.hz, tc.amp, native, 30), 0o644); err != nil {
				t.Fatal(err)
			}
			play(t, c, 0, "hw", wav)
			pcm, info := captureInfo(t, "hw:Loopback,1,0", nil)
			if info.NativeRate != native || info.Rate != boardRate {
				t.Errorf("info: native rate %v, rate %v; want %d and %d", info.NativeRate, info.Rate, native, boardRate)
			}
			if tc.hz == toneHz {
				checkTone(t, "hw:Loopback,1,0", pcm)
				return
			}
			pow, binHz := spectrum(pcm)
			var folded float64 // energy around 16000-11000 = 5000 Hz
			for k := int(4900 / binHz); k <= int(5100/binHz); k++ {
				folded += pow[k]
			}
			// A sine of amplitude A over n samples (zero-padded to N) puts
			// about (A·n/2)² in its peak bin.
			n := float64(len(pcm))
			db := 10 * math.Log10(folded/math.Pow(tc.amp*n/2, 2))
			t.Logf("11 kHz at 48 kHz folded to 5 kHz at %.1f dB", db)
			if db > -50 {
				t.Fatalf("11 kHz folded to 5 kHz at %.1f dB, want below -50 dB (aliasing: no low-pass before decimation)", db)
			}
		})
	}
}

// TestBoardDefault (issue 12, defect 3): with sound cards but no
// pulse/pipewire, ALSA's name hints have no plain "default"; `device:
// default` used to pick the first hint, the null PCM, and was refused. It is
// ALSA's default PCM, as `arecord -D default` opens it: card 0's default
// (for snd-aloop: plug → softvol → dsnoop on device 0). The tone played into
// device 1 must arrive, and the kernel must show card 0's capture substream
// running.
func TestBoardDefault(t *testing.T) {
	c := loopback(t, "index=0")
	if os.Getenv("VBOARD_ARCH") == "amd64" {
		vboard.Modprobe(t, "snd-dummy", "index=1")
	}
	if c.index != 0 {
		t.Fatalf("Loopback is card %d, want 0", c.index)
	}
	// The defect's precondition: miniaudio's enumeration (ALSA's name
	// hints) flags no default, so the old code took its first entry.
	mctx, err := malgo.InitContext([]malgo.Backend{malgo.BackendAlsa}, malgo.ContextConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := mctx.Devices(malgo.Capture)
	_ = mctx.Uninit()
	mctx.Free()
	if err != nil {
		t.Fatal(err)
	}
	var hints []string
	for i := range infos {
		hints = append(hints, fmt.Sprintf("%s (default %v)", deviceIDString(infos[i].ID), infos[i].IsDefault != 0))
	}
	t.Logf("miniaudio's capture devices, in order: %s", strings.Join(hints, ", "))
	playTone(t, c, 1)
	status := fmt.Sprintf("%s/card0/pcm0c/sub0/status", ProcRoot)
	running := false
	pcm := captureSecond(t, "default", func() { running = substreamRunning(status) })
	if !running {
		b, _ := os.ReadFile(status)
		t.Fatalf("capturing from default, but %s says:\n%s", status, b)
	}
	checkTone(t, "default", pcm)
}

// TestBoardUnknownDevice: a card that is not there names the ones that are;
// a device the card lacks is refused for good.
func TestBoardUnknownDevice(t *testing.T) {
	loopback(t)
	for _, tc := range []struct {
		device, want string
		permanent    bool
	}{
		{"hw:Loopbak,1", `no sound card "Loopbak"; capture devices: hw:Loopback,0 (Loopback: Loopback PCM), hw:Loopback,1 (Loopback: Loopback PCM)`, false},
		{"hw:Loopback,2", "has no capture device 2", true},
	} {
		src, err := New("mic", Config{Device: tc.device}, sensors.Env{})
		if err != nil {
			t.Fatal(err)
		}
		err = src.Run(context.Background(), make(chan sensors.Sample))
		if err == nil || !strings.Contains(err.Error(), tc.want) || retry.IsPermanent(err) != tc.permanent {
			t.Errorf("device %q: Run = %v; want %q (permanent %v)", tc.device, err, tc.want, tc.permanent)
		}
	}
}

// TestBoardSensorsList: `edge-agent sensors -json` (the cgo agent) lists the
// loopback's two capture devices by their ALSA names, told apart although
// they share a name.
func TestBoardSensorsList(t *testing.T) {
	c := loopback(t)
	agent := os.Getenv("VBOARD_AGENT_CGO")
	if agent == "" {
		t.Fatal("VBOARD_AGENT_CGO is not set")
	}
	out, err := exec.Command(agent, "sensors", "-json").Output()
	if err != nil {
		t.Fatalf("%s sensors -json: %v", agent, err)
	}
	var inv struct {
		Audio []struct {
			ID       string `json:"id"`
			Name     string `json:"name"`
			Card     *int   `json:"card"`
			CardID   string `json:"card_id"`
			CardName string `json:"card_name"`
			Device   *int   `json:"device"`
		} `json:"audio"`
		AudioError string `json:"audio_error"`
	}
	if err := json.Unmarshal(out, &inv); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if inv.AudioError != "" {
		t.Fatalf("audio_error: %s", inv.AudioError)
	}
	for dev := range 2 {
		id := fmt.Sprintf("hw:Loopback,%d", dev)
		found := false
		for _, a := range inv.Audio {
			if a.ID != id {
				continue
			}
			found = true
			if a.Card == nil || *a.Card != c.index || a.CardID != "Loopback" || a.CardName != "Loopback" ||
				a.Device == nil || *a.Device != dev || a.Name != "Loopback PCM" {
				t.Errorf("%s listed as %+v", id, a)
			}
		}
		if !found {
			t.Errorf("%s not listed:\n%s", id, out)
		}
	}
}
