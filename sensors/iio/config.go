// Package iio reads accelerometers through the Linux IIO subsystem (sysfs polling
// and buffered capture from /dev/iio:deviceN).
package iio

import (
	"context"
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
)

// Config is the `iio:` block of a sensor.
type Config struct {
	// Device is the IIO device name (the "name" file), or "auto" for the
	// first device with accelerometer channels.
	Device string `yaml:"device"`
	// Frequencies are the rates offered to links; the first is the default.
	Frequencies     []float64     `yaml:"frequencies"`
	MaxSampleLength conf.Duration `yaml:"max_sample_length"`
	// Mode is poll (sysfs, <= 100 Hz) or buffered (/dev/iio:deviceN); auto
	// picks buffered when the device supports it and the rate is above 100 Hz.
	Mode string `yaml:"mode"`
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
	for i, f := range c.Frequencies {
		v.Positive(fmt.Sprintf("frequencies[%d]", i), f)
	}
	v.OneOf("mode", c.Mode, "auto", "poll", "buffered")
}

// New returns the sensor. The driver is being written (see the open issue);
// until then it reports that it is not built.
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	_ = context.Background
	return nil, fmt.Errorf("iio sensor %q: %w", name, sensors.ErrNotBuilt)
}
