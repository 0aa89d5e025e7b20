//go:build cgo

package audio

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gen2brain/malgo"
)

// ListCaptureDevices lists the capture devices: each sound card's capture
// devices from /proc/asound as hw:CARD,DEV, then the other PCMs ALSA's
// configuration offers for capture ("null", "pulse", …), each with the rates
// it offers (which takes opening it: a device in use says busy). Only the ALSA
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
	devs := cardDevices(cards)
	cardRates(devs, backends)
	return append(devs, pcms...), nil
}

// cardRates asks each card device which rates it offers. miniaudio answers
// only for a device its enumeration lists, by the name it lists it under:
// its default enumeration names a card's device ":N,D" and opens that
// through dsnoop first, whose rate is dsnoop's setting, not the device's; its
// verbose enumeration lists ALSA's own hint names, hw:CARD=ID,DEV=N among
// them, which open the device itself (as hw:ID,N, what the microphone opens).
func cardRates(devs []Device, backends []malgo.Backend) {
	if len(devs) == 0 {
		return
	}
	mctx, err := malgo.InitContext(backends, malgo.ContextConfig{Alsa: malgo.AlsaContextConfig{UseVerboseDeviceEnumeration: 1}}, nil)
	if err != nil {
		for i := range devs {
			devs[i].RatesError = "init audio context: " + err.Error()
		}
		return
	}
	defer func() {
		_ = mctx.Uninit()
		mctx.Free()
	}()
	for i := range devs {
		id, err := alsaDeviceID(fmt.Sprintf("hw:CARD=%s,DEV=%d", devs[i].CardID, devs[i].PCM))
		if err != nil {
			devs[i].RatesError = err.Error()
			continue
		}
		devs[i].Rates, devs[i].RatesError = deviceRates(mctx.Context, id)
	}
}

// deviceRates opens the capture device id (not blocking: ALSA opens hw
// devices non-blocking by default, so a busy one fails at once) and returns
// the distinct rates of its native formats, ascending, or why it could not.
func deviceRates(mctx malgo.Context, id malgo.DeviceID) ([]int, string) {
	info, err := mctx.DeviceInfo(malgo.Capture, id, malgo.Shared)
	if err != nil {
		return nil, describeOpenError(err)
	}
	return distinctRates(info.Formats), ""
}

// describeOpenError says why a device could not be asked for its rates in
// the words a user acts on.
func describeOpenError(err error) string {
	if errors.Is(err, malgo.ErrBusy) {
		return "busy (another program, or the running agent, captures from it)"
	}
	return err.Error()
}

// distinctRates returns the rates of formats, each once, ascending; a format
// with rate 0 (miniaudio's "any rate", the null backend's) adds none.
func distinctRates(formats []malgo.DataFormat) []int {
	seen := map[int]bool{}
	var out []int
	for _, f := range formats {
		if r := int(f.SampleRate); r > 0 && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
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
		d := Device{ID: id, Name: infos[i].Name(), Card: -1, PCM: -1}
		d.Rates, d.RatesError = deviceRates(mctx, infos[i].ID)
		out = append(out, d)
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
