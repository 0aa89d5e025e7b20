// Package edgeimpulse is the Edge Impulse remote-management link: a WebSocket
// (Hello v3, JSON or CBOR) answering sample requests and streaming snapshots,
// with signed uploads to the ingestion service.
package edgeimpulse

import (
	"fmt"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
)

// Config is the `edgeimpulse:` block of a link.
type Config struct {
	APIKey     string `yaml:"api_key"`
	APIKeyFile string `yaml:"api_key_file"`
	// RemoteMgmtURL is the remote management WebSocket.
	RemoteMgmtURL string `yaml:"remote_mgmt_url"`
	IngestionURL  string `yaml:"ingestion_url"`
	Encoding      string `yaml:"encoding"` // json | cbor
	// Sensors are the sensor names offered in the Hello.
	Sensors            []string `yaml:"sensors"`
	CAFile             string   `yaml:"ca_file"`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.RemoteMgmtURL == "" {
		c.RemoteMgmtURL = "wss://remote-mgmt.edgeimpulse.com"
	}
	if c.IngestionURL == "" {
		c.IngestionURL = "https://ingestion.edgeimpulse.com"
	}
	if c.Encoding == "" {
		c.Encoding = "json"
	}
}

// Validate records every problem with the block and resolves secrets.
func (c *Config) Validate(v *conf.Validator) {
	c.APIKey = v.Secret("api_key", c.APIKey, "api_key_file", c.APIKeyFile, true)
	v.URL("remote_mgmt_url", c.RemoteMgmtURL, true, "ws", "wss")
	v.URL("ingestion_url", c.IngestionURL, true, "http", "https")
	v.OneOf("encoding", c.Encoding, "json", "cbor")
	if len(c.Sensors) == 0 {
		v.Errorf("sensors", "required: the sensors offered to Studio")
	}
}

// SensorNames maps config fields to the sensors they name, for the loader's
// cross-check.
func (c *Config) SensorNames() map[string]string {
	out := map[string]string{}
	for i, s := range c.Sensors {
		out[fmt.Sprintf("sensors[%d]", i)] = s
	}
	return out
}

// New returns the link. The link is being written (see the open issue); until
// then it reports that it is not built.
func New(cfg Config, deps transport.Deps) (transport.Link, error) {
	return nil, fmt.Errorf("edgeimpulse link %q: %w", deps.Name, sensors.ErrNotBuilt)
}
