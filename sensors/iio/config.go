// Package iio reads accelerometers through the Linux IIO subsystem: sysfs
// polling for rates up to 100 Hz, and buffered capture from /dev/iio:deviceN
// (kernel timestamps, no gaps unless the kernel FIFO overflows) above that.
// Devices are found by their name, never by the probe-order index; the sysfs
// and /dev roots come from sensors.Env so that tests run against a fake tree
// with a FIFO standing in for the character device.
package iio

import (
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// MaxPollRate is the fastest rate served by sysfs polling: every _raw read is
// its own bus transaction and a Go timer adds jitter, so faster rates need
// buffered capture.
const MaxPollRate = 100.0

// Config is the `iio:` block of a sensor.
type Config struct {
	// Device is the IIO device name (the "name" file), or "auto" for the
	// first device with accelerometer channels.
	Device string `yaml:"device"`
	// Frequencies are the rates offered to links; the first is the running
	// rate. The driver writes it (or the nearest rate the chip offers) and
	// reports the rate it reads back.
	Frequencies     []float64     `yaml:"frequencies"`
	MaxSampleLength conf.Duration `yaml:"max_sample_length"` // longest sample a link may record from this sensor (Edge Impulse maxSampleLengthS)
	// Mode is poll (sysfs, <= 100 Hz) or buffered (/dev/iio:deviceN); auto
	// picks buffered when the device supports it and the rate is above 100 Hz.
	Mode string `yaml:"mode"`
	// Trigger, when set, is written to trigger/current_trigger before
	// buffered capture (e.g. an hrtimer trigger for chips without a wired
	// IRQ). Empty leaves the driver's trigger alone.
	Trigger string `yaml:"trigger"`
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Device == "" {
		c.Device = "auto"
	}
	if len(c.Frequencies) == 0 {
		c.Frequencies = []float64{100}
	}
	if c.MaxSampleLength == 0 {
		c.MaxSampleLength = conf.Duration(5 * time.Minute)
	}
	if c.Mode == "" {
		c.Mode = "auto"
	}
}

// Validate records every problem with the block.
func (c *Config) Validate(v *conf.Validator) {
	v.Required("device", c.Device)
	if len(c.Frequencies) == 0 {
		v.Errorf("frequencies", "at least one rate is required")
	}
	for i, f := range c.Frequencies {
		v.Positive(fmt.Sprintf("frequencies[%d]", i), f)
		if c.Mode == "poll" && f > MaxPollRate {
			v.Errorf(fmt.Sprintf("frequencies[%d]", i), "%g Hz is above the %g Hz poll mode serves; use mode buffered or auto", f, MaxPollRate)
		}
	}
	v.OneOf("mode", c.Mode, "auto", "poll", "buffered")
	if c.MaxSampleLength < 0 {
		v.Errorf("max_sample_length", "must be >= 0")
	}
}
