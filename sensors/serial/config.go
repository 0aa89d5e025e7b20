// Package serial reads Arduino-style boards that print one reading per line
// over a serial port (go.bug.st/serial): values separated by comma, space or
// tab. The number of axes and the sampling frequency are detected from the
// data unless the config gives them. An unplugged board makes Run return an
// error; the hub restarts it with backoff, which reopens the port once the
// board is back.
package serial

import (
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Config is the `serial:` block of a sensor.
type Config struct {
	Port string `yaml:"port"` // e.g. /dev/serial/by-id/usb-Arduino…, or /dev/ttyACM0
	Baud int    `yaml:"baud"` // line speed of the port
	// Axes names the columns; empty means detect the count and call them
	// axis0…axisN-1.
	Axes  []string `yaml:"axes"`
	Units string   `yaml:"units"` // unit of the values, e.g. m/s2 (shown to links)
	// Frequency in Hz; 0 means detect it from the line timing.
	Frequency       float64       `yaml:"frequency"`
	MaxSampleLength conf.Duration `yaml:"max_sample_length"` // longest sample a link may record from this sensor
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Baud == 0 {
		c.Baud = 115200
	}
	if c.MaxSampleLength == 0 {
		c.MaxSampleLength = conf.Duration(5 * time.Minute)
	}
}

// Validate records every problem with the block.
func (c *Config) Validate(v *conf.Validator) {
	v.Required("port", c.Port)
	if c.Baud <= 0 {
		v.Errorf("baud", "must be > 0")
	}
	if c.Frequency < 0 {
		v.Errorf("frequency", "must be >= 0 (0 detects it)")
	}
	if len(c.Axes) > MaxAxes {
		v.Errorf("axes", "at most %d axes", MaxAxes)
	}
	seen := map[string]bool{}
	for i, a := range c.Axes {
		switch {
		case a == "":
			v.Errorf(fmt.Sprintf("axes[%d]", i), "must not be empty")
		case seen[a]:
			v.Errorf(fmt.Sprintf("axes[%d]", i), "duplicate axis %q", a)
		}
		seen[a] = true
	}
	if c.MaxSampleLength < 0 {
		v.Errorf("max_sample_length", "must be >= 0")
	}
}
