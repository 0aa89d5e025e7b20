// Package audio captures a microphone through miniaudio (gen2brain/malgo,
// cgo) on the ALSA backend: s16le mono PCM (16 kHz by default) in 20 ms
// blocks. Builds without cgo keep the package (config, discovery and New
// report that microphone support is not compiled in), so the pure-Go ARMv6
// binary still builds; such boards can run arecord as a command sensor.
package audio

import (
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Config is the `microphone:` block of a sensor.
type Config struct {
	// Device is the ALSA capture device: "default" (ALSA's default PCM, as
	// `arecord -D default` opens it); "hw:CARD,DEV" as `edge-agent sensors`
	// lists it, CARD being a card's id or index ("hw:Device,0", "hw:1,0");
	// "plughw:CARD,DEV"; "hw:CARD" (device 0); "sysdefault:CARD"; a card's id
	// or index alone (its first capture device); or another ALSA PCM name,
	// e.g. one defined in /etc/asound.conf.
	Device          string        `yaml:"device"`
	SampleRate      int           `yaml:"sample_rate"`       // rate of the samples in Hz; a device that runs at another rate is converted with a low-pass resampler
	MaxSampleLength conf.Duration `yaml:"max_sample_length"` // longest sample a link may record from this sensor
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Device == "" {
		c.Device = "default"
	}
	if c.SampleRate == 0 {
		c.SampleRate = 16000
	}
	if c.MaxSampleLength == 0 {
		c.MaxSampleLength = conf.Duration(time.Minute)
	}
}

// Validate records every problem with the block.
func (c *Config) Validate(v *conf.Validator) {
	if v.Required("device", c.Device) {
		if _, err := parseDevice(c.Device); err != nil {
			v.Errorf("device", "%v", err)
		}
	}
	if c.SampleRate < 8000 || c.SampleRate > 192000 {
		v.Errorf("sample_rate", "must be between 8000 and 192000")
	}
	if c.MaxSampleLength < 0 {
		v.Errorf("max_sample_length", "must be >= 0")
	}
}
