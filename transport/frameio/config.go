// Package frameio is the Frame.io Camera-to-Cloud link: device-code pairing,
// token refresh, a Phoenix channel socket with heartbeat and paused status,
// and durable asset upload. The protocol facts it relies on, with their
// sources, are in docs/protocols/frameio-c2c.md; comments cite its sections.
//
// The link has two halves. The session (Dial/Serve) keeps the device socket
// joined so Frame.io shows the device online and tells it about pauses. The
// worker (Work) turns stills and watched files into spooled assets and
// delivers them over plain HTTPS, so uploads continue while the socket is
// down. Both share one token source, which refreshes single-flight and writes
// rotated tokens to disk before using them.
//
// Trust (internal/httpx, the same for every link): ca_file is added to the
// system roots (presigned S3 URLs keep working with a private api_url CA);
// no redirect of the OAuth POSTs, the asset create or a part PUT is
// followed, nor of a GET to another origin or from https to http; a refused
// redirect is retried, the asset stays spooled. upload_urls must be one per
// part asked for and https (http only when api_url is http, on its host
// name); they are written once per asset, with the create, in the spool
// item's progress log (0600), not with every part's progress. A server's wait (Retry-After, x-ratelimit-window,
// a device code's interval) is capped.
package frameio

import (
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Config is the `frameio:` block of a link.
type Config struct {
	APIURL           string `yaml:"api_url"`            // Frame.io API base URL
	SocketURL        string `yaml:"socket_url"`         // the device WebSocket (Phoenix channel)
	ClientID         string `yaml:"client_id"`          // the device client id issued for this integration
	ClientSecret     string `yaml:"client_secret"`      // the client secret inline (discouraged: use client_secret_file)
	ClientSecretFile string `yaml:"client_secret_file"` // file holding the client secret (mode 0600)
	// TokenFile is where `edge-agent pair` stores the tokens and the link
	// reads and rotates them. Empty means tokens.json in the link's state
	// directory (state_dir/links/<name>).
	TokenFile string `yaml:"token_file"`
	// Channel is the device channel sent with every asset (external_index).
	Channel int    `yaml:"channel"`
	Upload  Upload `yaml:"upload"`

	CAFile             string `yaml:"ca_file"`              // PEM file of CAs trusted in addition to the system roots
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // skip TLS certificate verification (testing only)
}

// Upload says what becomes assets.
type Upload struct {
	// Sensor is a still (JPEG) sensor captured every Every; empty or a zero
	// Every disables captures.
	Sensor string        `yaml:"sensor"`
	Every  conf.Duration `yaml:"every"` // capture a still from upload.sensor this often; 0 disables
	// WatchDir is scanned for finished files (size stable across two scans);
	// each is spooled and then moved to WatchDir/.spooled so it stays on
	// user-accessible storage. Only plain files are taken (no links, FIFOs
	// or files with a second hard link); one larger than the spool's free
	// room waits, reported in /status. The agent must be able to write here:
	// under the shipped systemd unit use /var/lib/edge-agent/watch, or add
	// ReadWritePaths= in a drop-in (deploy/watch-dir.conf); otherwise nothing
	// is queued.
	WatchDir string `yaml:"watch_dir"`
	// Parallel is how many parts of one asset are PUT at once (default 2).
	Parallel int `yaml:"parallel"`
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.APIURL == "" {
		c.APIURL = "https://api.frame.io"
	}
	if c.SocketURL == "" {
		c.SocketURL = "wss://api.frame.io/devices/websocket"
	}
	if c.Upload.Parallel == 0 {
		c.Upload.Parallel = 2
	}
}

// Validate records every problem with the block and resolves secrets.
func (c *Config) Validate(v *conf.Validator) {
	v.URL("api_url", c.APIURL, true, "http", "https")
	v.URL("socket_url", c.SocketURL, true, "ws", "wss")
	v.SocketTLS("socket_url", c.SocketURL, "api_url", c.APIURL, "the access token")
	v.Required("client_id", c.ClientID)
	c.ClientSecret = v.Secret("client_secret", c.ClientSecret, "client_secret_file", c.ClientSecretFile, true)
	if c.Channel < 0 {
		v.Errorf("channel", "must be >= 0")
	}
	if c.Upload.Every.D() < 0 {
		v.Errorf("upload.every", "must be >= 0")
	} else if c.Upload.Every.D() > 0 && c.Upload.Every.D() < time.Second {
		v.Errorf("upload.every", "must be at least 1s (every still becomes a Frame.io asset)")
	}
	if c.Upload.Every.D() > 0 && c.Upload.Sensor == "" {
		v.Errorf("upload.sensor", "required when upload.every is set")
	}
	if c.Upload.Parallel < 1 || c.Upload.Parallel > 8 {
		v.Errorf("upload.parallel", "must be between 1 and 8")
	}
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
