//go:build cgo

package audio

import (
	"fmt"
	"strings"

	"github.com/gen2brain/malgo"
)

// ListCaptureDevices lists the capture devices: each sound card's capture
// devices from /proc/asound as hw:CARD,DEV, then the other PCMs ALSA's
// configuration offers for capture ("null", "pulse", …). Only the ALSA
// backend is asked, so a board without libasound gets an error instead of
// miniaudio's null device. Safe to call concurrently (each call has its own
// context).
func ListCaptureDevices() ([]Device, error) {
	return listCaptureDevices(ProcRoot, []malgo.Backend{malgo.BackendAlsa})
}

func listCaptureDevices(procRoot string, backends []malgo.Backend) ([]Device, error) {
	cards, err := readCards(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list capture devices: %w", err)
	}
	mctx, err := malgo.InitContext(backends, malgo.ContextConfig{}, nil)
	if err != nil {
		return nil, fmt.Errorf("list capture devices: init audio context (is libasound2 installed?): %w", err)
	}
	defer func() {
		_ = mctx.Uninit()
		mctx.Free()
	}()
	pcms, err := configuredPCMs(mctx.Context)
	if err != nil {
		return nil, fmt.Errorf("list capture devices: %w", err)
	}
	return append(cardDevices(cards), pcms...), nil
}

// configuredPCMs lists the capture PCMs from ALSA's name hints that are not
// one card's device. miniaudio reports a card's devices as ":N,D" (its
// plugin-less form, one entry per card and device, named by the card alone,
// so two devices of a card look alike); those come from /proc/asound
// instead, with names that tell them apart.
func configuredPCMs(mctx malgo.Context) ([]Device, error) {
	infos, err := mctx.Devices(malgo.Capture)
	if err != nil {
		return nil, err
	}
	var out []Device
	for i := range infos {
		id := deviceIDString(infos[i].ID)
		if strings.HasPrefix(id, ":") {
			continue
		}
		out = append(out, Device{ID: id, Name: infos[i].Name(), Card: -1, PCM: -1})
	}
	return out, nil
}

// deviceIDString renders a miniaudio device ID: ALSA IDs are NUL-terminated
// PCM names ("null", ":1,0"); anything else is shown as hex.
func deviceIDString(id malgo.DeviceID) string {
	n := 0
	for n < len(id) && id[n] != 0 {
		if id[n] < 0x20 || id[n] > 0x7e {
			return id.String()
		}
		n++
	}
	if n == 0 {
		return id.String()
	}
	return string(id[:n])
}

// alsaDeviceID makes a miniaudio device ID that opens the ALSA PCM pcm:
// miniaudio's ALSA backend hands an ID that does not start with ':' to
// snd_pcm_open as it is (ma_device_id's alsa field, char[256]).
func alsaDeviceID(pcm string) (malgo.DeviceID, error) {
	var id malgo.DeviceID
	if len(pcm) >= min(len(id), 256) || strings.IndexByte(pcm, 0) >= 0 {
		return id, fmt.Errorf("ALSA PCM name %q too long or not text", pcm)
	}
	copy(id[:], pcm)
	return id, nil
}
