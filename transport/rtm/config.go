// Package rtm is the stream-recording link: WebSocket signalling and a pion
// WebRTC peer connection publishing the camera (H.264) and microphone (PCMU),
// with recording start/stop and a PUT upload URL. The protocol is described in
// docs/protocols/webrtc-rtm.md; README.md next to this file says what the
// link does on each event.
package rtm

import (
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors/h264"
)

// Config is the `rtm:` block of a link.
type Config struct {
	// APIURL, when set, creates each session over REST first.
	APIURL string `yaml:"api_url"`
	URL    string `yaml:"url"`   // the RTM signalling WebSocket, used when api_url is empty
	Token  string `yaml:"token"` // the Bearer token inline (static: a rejection is permanent; prefer token_file or token_url)
	// TokenFile holds the Bearer token (mode 0600). It is re-read before
	// every session and after a 401, so a helper may keep it fresh.
	TokenFile string `yaml:"token_file"`
	// TokenURL is our backend's endpoint minting this device's token (the
	// master key never goes on a device, docs/protocols/webrtc-rtm.md §2.1):
	// POST {"client_id"} with the device key as Bearer → {"auth_token": JWT}.
	// The link renews the token token_refresh_before its exp and after a
	// 401. Excludes token/token_file.
	TokenURL        string `yaml:"token_url"`
	TokenURLKey     string `yaml:"token_url_key"`      // the device key for token_url inline (discouraged: use token_url_key_file)
	TokenURLKeyFile string `yaml:"token_url_key_file"` // file holding the device key for token_url (mode 0600)
	// TokenRefreshBefore renews a token this long before its JWT exp (at
	// most half its lifetime). Tokens are only presented when a session is
	// set up; a running stream is never interrupted to renew one.
	TokenRefreshBefore conf.Duration `yaml:"token_refresh_before"`
	// WSTokenQueryParam, when set, also passes the token as this query
	// parameter on the WebSocket URL (browser-style auth;
	// docs/protocols/webrtc-rtm.md §2.3).
	WSTokenQueryParam string `yaml:"ws_token_query_param"`
	ClientID          string `yaml:"client_id"` // this device's client id in the service
	// Video names the sensor giving H.264; Audio the optional microphone.
	Video      string      `yaml:"video"`
	Audio      string      `yaml:"audio"`       // the microphone sensor to publish as PCMU (optional)
	ICEServers []ICEServer `yaml:"ice_servers"` // STUN/TURN servers for the peer connection
	// VideoChecks are the limits of what the link checks in the H.264 it
	// publishes (problems are shown in /status and logged once).
	VideoChecks VideoChecks `yaml:"video_checks"`
	Record      Record      `yaml:"record"`
	WebhookURL  string      `yaml:"webhook_url"` // URL the service calls on session or recording events (optional)

	CAFile             string `yaml:"ca_file"`              // PEM file of CAs trusted in addition to the system roots
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // skip TLS certificate verification (testing only)
}

// ICEServer is one STUN/TURN server.
type ICEServer struct {
	URLs       []string `yaml:"urls"`       // stun: or turn: URLs
	Username   string   `yaml:"username"`   // TURN user name
	Credential string   `yaml:"credential"` // TURN credential inline (discouraged: use credential_file)
	// CredentialFile holds the TURN credential (mode 0600), read when the
	// config is loaded.
	CredentialFile string `yaml:"credential_file"`
}

// VideoChecks tunes the check of the published H.264 stream
// (docs/protocols/webrtc-rtm.md §6.1).
type VideoChecks struct {
	// MaxKeyframeInterval is the longest keyframe interval not reported as
	// a problem: a viewer who joins, or loses a packet, waits up to one
	// interval for a picture.
	MaxKeyframeInterval conf.Duration `yaml:"max_keyframe_interval"`
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
	if c.TokenRefreshBefore == 0 {
		c.TokenRefreshBefore = conf.Duration(5 * time.Minute)
	}
	if c.VideoChecks.MaxKeyframeInterval == 0 {
		c.VideoChecks.MaxKeyframeInterval = conf.Duration(h264.DefaultMaxKeyframeGap)
	}
}

// Validate records every problem with the block and resolves secrets.
func (c *Config) Validate(v *conf.Validator) {
	if c.APIURL == "" {
		v.URL("url", c.URL, true, "ws", "wss")
		// token_url mints the token url then carries. With api_url the
		// socket is the service's ws_endpoint, checked when it arrives.
		v.SocketTLS("url", c.URL, "token_url", c.TokenURL, "the Bearer token")
	} else {
		v.URL("api_url", c.APIURL, true, "http", "https")
	}
	if c.TokenURL != "" {
		v.URL("token_url", c.TokenURL, true, "http", "https")
		if c.Token != "" || c.TokenFile != "" {
			v.Errorf("token_url", "give either token_url or token/token_file, not both")
		}
		c.TokenURLKey = v.Secret("token_url_key", c.TokenURLKey, "token_url_key_file", c.TokenURLKeyFile, true)
	} else {
		c.Token = v.Secret("token", c.Token, "token_file", c.TokenFile, true)
	}
	v.Positive("token_refresh_before", c.TokenRefreshBefore.D().Seconds())
	v.Positive("video_checks.max_keyframe_interval", c.VideoChecks.MaxKeyframeInterval.D().Seconds())
	v.Required("client_id", c.ClientID)
	v.Required("video", c.Video)
	v.OneOf("record.start", c.Record.Start, "auto", "manual")
	v.URL("record.upload_url", c.Record.UploadURL, false, "http", "https")
	if c.Record.Start == "auto" && c.Record.UploadURL == "" {
		v.Warnf("record.upload_url", "empty: the link streams but never starts a recording")
	}
	v.URL("record.webhook_url", c.Record.WebhookURL, false, "http", "https")
	v.URL("webhook_url", c.WebhookURL, false, "http", "https")
	for i := range c.ICEServers {
		s := &c.ICEServers[i]
		at := fmt.Sprintf("ice_servers[%d].", i)
		if len(s.URLs) == 0 {
			v.Errorf(at+"urls", "required")
		}
		s.Credential = v.Secret(at+"credential", s.Credential, at+"credential_file", s.CredentialFile, false)
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

// RecordsAlways reports whether the link records on its own (record.start
// auto): a rule's rtm.record would then stop that recording after its time
// (agent/config warns).
func (c *Config) RecordsAlways() bool { return c.Record.Start != "manual" }
