// Package camserver is the REST Web Camera Server link: an HTTP/2 JSON API
// (authorize, heartBit, messages, records) and a framed raw stream pushed with
// PUT input.raw.
package camserver

import (
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
)

// Config is the `camserver:` block of a link.
type Config struct {
	URL                string `yaml:"url"`
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	User               string `yaml:"user"`
	Password           string `yaml:"password"`
	PasswordFile       string `yaml:"password_file"`
	Stream             Stream `yaml:"stream"`
}

// Stream configures the raw stream pushed with PUT input.raw.
type Stream struct {
	Sensor   string        `yaml:"sensor"`
	Subproto string        `yaml:"subproto"`
	Delta    conf.Duration `yaml:"delta"`
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Stream.Subproto == "" {
		c.Stream.Subproto = "RAW_JPEG"
	}
	if c.Stream.Delta == 0 {
		c.Stream.Delta = conf.Duration(400 * time.Millisecond)
	}
}

// Validate records every problem with the block and resolves secrets.
func (c *Config) Validate(v *conf.Validator) {
	v.URL("url", c.URL, true, "http", "https")
	v.Required("user", c.User)
	c.Password = v.Secret("password", c.Password, "password_file", c.PasswordFile, true)
}

// SensorNames maps config fields to the sensors they name, for the loader's
// cross-check.
func (c *Config) SensorNames() map[string]string {
	out := map[string]string{}
	if c.Stream.Sensor != "" {
		out["stream.sensor"] = c.Stream.Sensor
	}
	return out
}

// New returns the link. The link is being written (see the open issue); until
// then it reports that it is not built.
func New(cfg Config, deps transport.Deps) (transport.Link, error) {
	return nil, fmt.Errorf("camserver link %q: %w", deps.Name, sensors.ErrNotBuilt)
}
