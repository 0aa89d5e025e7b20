// Package rtm is the stream-recording link: WebSocket signalling and a pion
// WebRTC peer connection publishing the camera (H.264) and microphone (PCMU),
// with recording start/stop and a PUT upload URL. The protocol is described in
// ../shared/specs/webrtc-rtm.md; README.md next to this file says what the
// link does on each event.
package rtm

import (
	"fmt"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Config is the `rtm:` block of a link.
type Config struct {
	// APIURL, when set, creates each session over REST first.
	APIURL    string `yaml:"api_url"`
	URL       string `yaml:"url"`        // the RTM signalling WebSocket, used when api_url is empty
	Token     string `yaml:"token"`      // the Bearer token inline (discouraged: use token_file)
	TokenFile string `yaml:"token_file"` // file holding the Bearer token for the socket (mode 0600)
	// WSTokenQueryParam, when set, also passes the token as this query
	// parameter on the WebSocket URL (browser-style auth; spec §2.4).
	WSTokenQueryParam string `yaml:"ws_token_query_param"`
	ClientID          string `yaml:"client_id"` // this device's client id in the service
	// Video names the sensor giving H.264; Audio the optional microphone.
	Video      string      `yaml:"video"`
	Audio      string      `yaml:"audio"`       // the microphone sensor to publish as PCMU (optional)
	ICEServers []ICEServer `yaml:"ice_servers"` // STUN/TURN servers for the peer connection
	Record     Record      `yaml:"record"`
	WebhookURL string      `yaml:"webhook_url"` // URL the service calls on session or recording events (optional)

	CAFile             string `yaml:"ca_file"`              // PEM file of CAs trusted in addition to the system roots
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // skip TLS certificate verification (testing only)
}

// ICEServer is one STUN/TURN server.
type ICEServer struct {
	URLs       []string `yaml:"urls"`       // stun: or turn: URLs
	Username   string   `yaml:"username"`   // TURN user name
	Credential string   `yaml:"credential"` // TURN credential
}

// Record configures recording.
type Record struct {
	UploadURL  string `yaml:"upload_url"`  // PUT target for recordings (sent with recording_start)
	WebhookURL string `yaml:"webhook_url"` // URL the service calls on session or recording events (optional)
	Start      string `yaml:"start"`       // auto | manual
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Record.Start == "" {
		c.Record.Start = "auto"
	}
}

// Validate records every problem with the block and resolves secrets.
func (c *Config) Validate(v *conf.Validator) {
	if c.APIURL == "" {
		v.URL("url", c.URL, true, "ws", "wss")
	} else {
		v.URL("api_url", c.APIURL, true, "http", "https")
	}
	c.Token = v.Secret("token", c.Token, "token_file", c.TokenFile, true)
	v.Required("client_id", c.ClientID)
	v.Required("video", c.Video)
	v.OneOf("record.start", c.Record.Start, "auto", "manual")
	v.URL("record.upload_url", c.Record.UploadURL, false, "http", "https")
	if c.Record.Start == "auto" && c.Record.UploadURL == "" {
		v.Warnf("record.upload_url", "empty: the link streams but never starts a recording")
	}
	v.URL("record.webhook_url", c.Record.WebhookURL, false, "http", "https")
	v.URL("webhook_url", c.WebhookURL, false, "http", "https")
	for i, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			v.Errorf(fmt.Sprintf("ice_servers[%d].urls", i), "required")
		}
	}
}

// SensorNames maps config fields to the sensors they name, for the loader's
// cross-check.
func (c *Config) SensorNames() map[string]string {
	out := map[string]string{"video": c.Video}
	if c.Audio != "" {
		out["audio"] = c.Audio
	}
	return out
}
