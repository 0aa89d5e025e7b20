// Package edgeimpulse is the Edge Impulse remote-management link: a WebSocket
// (Hello v3, JSON or CBOR) answering Studio's sample requests and streaming
// camera snapshots, with signed uploads to the ingestion service that go
// through the link's durable spool, so a recorded sample survives an
// ingestion outage or an agent restart.
//
// The protocol facts it relies on, with their sources, are in
// docs/protocols/edge-impulse.md; comments cite its sections. Files: link.go
// (Link, New, Dial and the Hello), session.go (Serve and Close: reader, writer,
// keep-alive), work.go (Work: spooled uploads), config.go (the `edgeimpulse:`
// block), codec.go (message codec), acquisition.go (the signed data-acquisition
// file), sample.go (sample requests), snapshot.go and scale.go (snapshot
// streaming), upload.go (spool and ingestion), drops.go (dropped samples by
// reason), apikey.go (api_key_file re-read, for a rotated key), peertext.go
// (service text made safe to show). eitest is the in-process fake of the
// service.
//
// Trust (internal/httpx, the same for every link): ca_file is added to the
// system roots; an ingestion POST (it carries x-api-key, which Go would
// forward to any host) is never redirected: the refused redirect is retried
// and the sample stays spooled. A Retry-After is honoured up to 15 minutes.
package edgeimpulse

import (
	"cmp"
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Config is the `edgeimpulse:` block of a link.
type Config struct {
	APIKey string `yaml:"api_key"` // the project API key inline (discouraged: use api_key_file)
	// APIKeyFile holds the project API key (mode 0600). It is re-read before
	// every session and after ingestion refuses the key, so a rotated key
	// needs no restart (a refused Hello is then retried, not final).
	APIKeyFile string `yaml:"api_key_file"`
	// RemoteMgmtURL is the remote management WebSocket.
	RemoteMgmtURL string `yaml:"remote_mgmt_url"`
	IngestionURL  string `yaml:"ingestion_url"` // base URL of the ingestion service (signed uploads)
	// StudioURL is Studio's REST API, used only to download the project's
	// model for on-device inference (an `inference[]` entry naming this
	// link): the project of the API key and its newest deployment for the
	// board's architecture.
	StudioURL string `yaml:"studio_url"`
	Encoding  string `yaml:"encoding"` // json | cbor
	// Sensors are the sensor names offered in the Hello.
	Sensors            []string `yaml:"sensors"`
	CAFile             string   `yaml:"ca_file"`              // PEM file of CAs trusted in addition to the system roots
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"` // skip TLS certificate verification (testing only)

	// PingInterval is how often the link pings the server (30 s, as the Node
	// clients do: docs/protocols/edge-impulse.md §2.2).
	PingInterval conf.Duration `yaml:"ping_interval"`
	// PongTimeout is how long after a ping without any answer the link is
	// declared dead and the session ends (the supervisor reconnects).
	PongTimeout conf.Duration `yaml:"pong_timeout"`
}

// Defaults.
const (
	DefaultPingInterval = 30 * time.Second
	DefaultPongTimeout  = 10 * time.Second
	defaultLowInterval  = 200 * time.Millisecond
)

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	c.RemoteMgmtURL = cmp.Or(c.RemoteMgmtURL, "wss://remote-mgmt.edgeimpulse.com")
	c.IngestionURL = cmp.Or(c.IngestionURL, "https://ingestion.edgeimpulse.com")
	c.StudioURL = cmp.Or(c.StudioURL, "https://studio.edgeimpulse.com")
	c.Encoding = cmp.Or(c.Encoding, "json")
	c.PingInterval = cmp.Or(c.PingInterval, conf.Duration(DefaultPingInterval))
	c.PongTimeout = cmp.Or(c.PongTimeout, conf.Duration(DefaultPongTimeout))
}

// Validate records every problem with the block and resolves secrets.
func (c *Config) Validate(v *conf.Validator) {
	c.APIKey = v.Secret("api_key", c.APIKey, "api_key_file", c.APIKeyFile, true)
	v.URL("remote_mgmt_url", c.RemoteMgmtURL, true, "ws", "wss")
	v.URL("ingestion_url", c.IngestionURL, true, "http", "https")
	v.URL("studio_url", c.StudioURL, true, "http", "https")
	v.SocketTLS("remote_mgmt_url", c.RemoteMgmtURL, "ingestion_url", c.IngestionURL, "the API key")
	v.OneOf("encoding", c.Encoding, "json", "cbor")
	if len(c.Sensors) == 0 {
		v.Errorf("sensors", "required: the sensors offered to Studio")
	}
	seen := map[string]bool{}
	for i, s := range c.Sensors {
		if seen[s] {
			v.Errorf(fmt.Sprintf("sensors[%d]", i), "%q is listed twice", s)
		}
		seen[s] = true
	}
	if c.PingInterval.D() < 0 {
		v.Errorf("ping_interval", "must be > 0")
	}
	if c.PongTimeout.D() < 0 {
		v.Errorf("pong_timeout", "must be > 0")
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
