//go:build cgo

package audio

import (
	"fmt"

	"github.com/gen2brain/malgo"
)

// ListCaptureDevices lists the ALSA capture devices. Only the ALSA backend is
// asked, so a board without libasound gets an error instead of miniaudio's
// null device. Safe to call concurrently (each call has its own context).
func ListCaptureDevices() ([]Device, error) {
	return listCaptureDevices([]malgo.Backend{malgo.BackendAlsa})
}

func listCaptureDevices(backends []malgo.Backend) ([]Device, error) {
	mctx, err := malgo.InitContext(backends, malgo.ContextConfig{}, nil)
	if err != nil {
		return nil, fmt.Errorf("list capture devices: init audio context: %w", err)
	}
	defer func() {
		_ = mctx.Uninit()
		mctx.Free()
	}()
	infos, err := mctx.Devices(malgo.Capture)
	if err != nil {
		return nil, fmt.Errorf("list capture devices: %w", err)
	}
	out := make([]Device, 0, len(infos))
	for i := range infos {
		out = append(out, Device{ID: deviceIDString(infos[i].ID), Name: infos[i].Name(), Default: infos[i].IsDefault != 0})
	}
	return out, nil
}

// deviceIDString renders a miniaudio device ID: ALSA IDs are NUL-terminated
// strings ("hw:1,0"), which users recognise; anything else is shown as hex.
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
