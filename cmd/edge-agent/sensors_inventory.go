package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/edge-agent/edge-agent/sensors/audio"
	"github.com/edge-agent/edge-agent/sensors/iio"
	"github.com/edge-agent/edge-agent/sensors/serial"
	"github.com/edge-agent/edge-agent/sensors/v4l2"
)

// inventory is what `edge-agent sensors` found. Each section carries its own
// error so one unavailable subsystem (no ALSA, no /dev/video*) does not hide
// the others. JSON names are snake_case like the config.
type inventory struct {
	// Model is the board's device-tree model; absent without one.
	Model       string        `json:"model,omitempty"`
	IIO         []iioEntry    `json:"iio"`
	IIOError    string        `json:"iio_error,omitempty"`
	Video       []v4l2.Device `json:"video"`
	VideoError  string        `json:"video_error,omitempty"`
	Audio       []audioEntry  `json:"audio"`
	AudioError  string        `json:"audio_error,omitempty"`
	Serial      []serialEntry `json:"serial"`
	SerialError string        `json:"serial_error,omitempty"`
}

type iioEntry struct {
	Name              string    `json:"name"`
	Dir               string    `json:"dir"`
	Index             int       `json:"index"`
	Channels          []string  `json:"channels"`
	SamplingFrequency float64   `json:"sampling_frequency"`
	Available         []float64 `json:"sampling_frequency_available,omitempty"`
	Buffered          bool      `json:"buffered"`
}

// audioEntry is one ALSA capture device: id is what microphone.device
// takes (hw:CARD,DEV for a card's device); the card fields are absent for
// PCMs that are not one card's device ("null", "pulse"). rates are the
// sample rates it offers (the microphone captures at one of them and
// converts to microphone.sample_rate); rates_error says why they are
// unknown (busy: something captures from it).
type audioEntry struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Card       *int   `json:"card,omitempty"`
	CardID     string `json:"card_id,omitempty"`
	CardName   string `json:"card_name,omitempty"`
	Device     *int   `json:"device,omitempty"`
	Rates      []int  `json:"rates,omitempty"`
	RatesError string `json:"rates_error,omitempty"`
}

type serialEntry struct {
	Path        string `json:"path"`
	Description string `json:"description,omitempty"`
}

// discover is the set of discovery calls; tests replace the ones that would
// look at this machine's real audio and serial hardware.
type discoverers struct {
	iio    func(sysRoot string) ([]iio.Device, error)
	video  func(devRoot string) ([]v4l2.Device, error)
	audio  func() ([]audio.Device, error)
	serial func() ([]serial.Port, error)
}

func realDiscoverers() discoverers {
	return discoverers{iio: iio.Discover, video: v4l2.Discover, audio: audio.ListCaptureDevices, serial: serial.ListPorts}
}

func takeInventory(d discoverers, sysRoot, devRoot string) inventory {
	var inv inventory
	if devs, err := d.iio(sysRoot); err != nil {
		inv.IIOError = err.Error()
	} else {
		for _, x := range devs {
			inv.IIO = append(inv.IIO, iioEntry{Name: x.Name, Dir: x.Dir, Index: x.Index, Channels: x.Channels,
				SamplingFrequency: x.SamplingFrequency, Available: x.Available, Buffered: x.Buffered})
		}
	}
	if devs, err := d.video(devRoot); err != nil {
		inv.VideoError = err.Error()
	} else {
		inv.Video = devs
	}
	if devs, err := d.audio(); err != nil {
		inv.AudioError = err.Error()
	} else {
		for _, x := range devs {
			e := audioEntry{ID: x.ID, Name: x.Name, Rates: x.Rates, RatesError: x.RatesError}
			if x.Card >= 0 {
				e.Card, e.CardID, e.CardName, e.Device = &x.Card, x.CardID, x.CardName, &x.PCM
			}
			inv.Audio = append(inv.Audio, e)
		}
	}
	if ports, err := d.serial(); err != nil {
		inv.SerialError = err.Error()
	} else {
		for _, p := range ports {
			inv.Serial = append(inv.Serial, serialEntry{Path: p.Path, Description: p.Description})
		}
	}
	// Empty lists print as [] in JSON, not null.
	if inv.IIO == nil {
		inv.IIO = []iioEntry{}
	}
	if inv.Video == nil {
		inv.Video = []v4l2.Device{}
	}
	if inv.Audio == nil {
		inv.Audio = []audioEntry{}
	}
	if inv.Serial == nil {
		inv.Serial = []serialEntry{}
	}
	return inv
}

// formatAudioRates shows a device's rates in Hz; a device that takes any
// rate (a software PCM) lists fourteen, shown as their range.
func formatAudioRates(rates []int, errText string) string {
	switch {
	case errText != "":
		return "? (" + errText + ")"
	case len(rates) == 0:
		return "-"
	case len(rates) > 6:
		return fmt.Sprintf("%d…%d (%d rates)", rates[0], rates[len(rates)-1], len(rates))
	}
	s := make([]string, len(rates))
	for i, r := range rates {
		s[i] = strconv.Itoa(r)
	}
	return strings.Join(s, " ")
}

func formatRates(v []float64) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strings.Join(s, " ")
}

// formatFormats shows the formats the agent can capture (MJPG, YUYV, H264)
// with their sizes, and only counts the rest: a test pattern generator or
// a capture card lists dozens of raw formats nobody can configure here.
// -json keeps them all.
func formatFormats(fs []v4l2.FormatInfo) string {
	var parts []string
	others := 0
	for _, f := range fs {
		switch f.FourCC {
		case v4l2.FourCCMJPEG.String(), v4l2.FourCCYUYV.String(), v4l2.FourCCH264.String():
		default:
			others++
			continue
		}
		sizes := f.Sizes
		if len(sizes) > 6 {
			sizes = append(append([]string{}, sizes[:5]...), "…+"+strconv.Itoa(len(f.Sizes)-5))
		}
		parts = append(parts, f.FourCC+" "+strings.Join(sizes, ","))
	}
	switch {
	case others > 0 && len(parts) == 0:
		parts = append(parts, fmt.Sprintf("none usable (%d other formats)", others))
	case others > 0:
		parts = append(parts, fmt.Sprintf("+%d other formats", others))
	}
	return strings.Join(parts, "; ")
}

func baseOr(p string) string {
	if p == "" {
		return "-"
	}
	return filepath.Base(p)
}
