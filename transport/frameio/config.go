// Package frameio is the Frame.io Camera-to-Cloud link: device-code pairing,
// token refresh, a Phoenix channel socket with heartbeat and paused status,
// and durable asset upload.
package frameio

import (
	"fmt"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
)

// Config is the `frameio:` block of a link.
type Config struct {
	APIURL           string `yaml:"api_url"`
	SocketURL        string `yaml:"socket_url"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	Upload           Upload `yaml:"upload"`

	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Upload says what becomes assets.
type Upload struct {
	Sensor   string        `yaml:"sensor"`
	Every    conf.Duration `yaml:"every"`
	WatchDir string        `yaml:"watch_dir"`
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.APIURL == "" {
		c.APIURL = "https://api.frame.io"
	}
	if c.SocketURL == "" {
		c.SocketURL = "wss://api.frame.io/devices/websocket"
	}
}

// Validate records every problem with the block and resolves secrets.
func (c *Config) Validate(v *conf.Validator) {
	v.URL("api_url", c.APIURL, true, "http", "https")
	v.URL("socket_url", c.SocketURL, true, "ws", "wss")
	v.Required("client_id", c.ClientID)
	c.ClientSecret = v.Secret("client_secret", c.ClientSecret, "client_secret_file", c.ClientSecretFile, true)
}

// SensorNames maps config fields to the sensors they name, for the loader's
// cross-check.
func (c *Config) SensorNames() map[string]string {
	out := map[string]string{}
	if c.Upload.Sensor != "" {
		out["upload.sensor"] = c.Upload.Sensor
	}
	return out
}

// New returns the link. The link is being written (see the open issue); until
// then it reports that it is not built.
func New(cfg Config, deps transport.Deps) (transport.Link, error) {
	return nil, fmt.Errorf("frameio link %q: %w", deps.Name, sensors.ErrNotBuilt)
}
