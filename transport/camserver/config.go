// Package camserver is the REST Web Camera Server link: an HTTP/2 JSON API
// (authorize, heartBit, messages, records) and a framed raw stream pushed with
// PUT input.raw. The wire reference is docs/protocols/camera-server.md.
//
// The link keeps one session per Dial: the JSON traffic on one HTTP/2
// connection, the stream on a second (a stream fault can make the server end
// its whole connection). Serve runs three loops under one errgroup: the
// heartbeat, the message poll (remote commands) and the stream pusher.
// Records (snapshots) go through the spool and are delivered by Work with
// addRecord whenever a session is up.
package camserver

import (
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Config is the `camserver:` block of a link.
type Config struct {
	URL                string `yaml:"url"`                  // server base URL, https:// (HTTP/2 over TLS) or http:// (h2c)
	CAFile             string `yaml:"ca_file"`              // PEM file of CAs (or the server certificate) trusted in addition to the system roots
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // skip TLS certificate verification (testing only)
	User               string `yaml:"user"`                 // the user name sent to authorize.json
	Password           string `yaml:"password"`             // the password inline (discouraged: use password_file)
	PasswordFile       string `yaml:"password_file"`        // file holding the password (mode 0600)
	// Device is the name this board uses on the server (unique in the
	// account, must contain a letter); empty means the agent's device name.
	Device string `yaml:"device"`
	Stream Stream `yaml:"stream"`
	// Snapshot is the still sensor used by the `snapshot` command; empty
	// means the stream sensor.
	Snapshot string `yaml:"snapshot"`
	// Poll is the message poll interval while no command is in use (each
	// poll is one request).
	Poll conf.Duration `yaml:"poll"`
	// PollFast is the message poll interval while commands are in use (for
	// poll_fast_for after the last command taken), so a viewer's next
	// snapshot or stream_start is seen sooner. It is raised to what half of
	// the link's request budget allows (4s at the server's default of 50
	// requests a minute); equal to poll turns fast polling off.
	PollFast conf.Duration `yaml:"poll_fast"`
	// PollFastFor is how long after the last command taken the poll stays
	// at poll_fast.
	PollFastFor conf.Duration `yaml:"poll_fast_for"`
	// Heartbeat is the idle time after which heartBit is sent; 0 derives it
	// from the account's dead-session timeout: min(timeout/4, 2m).
	Heartbeat conf.Duration `yaml:"heartbeat"`
	// Commands limits who may command this board through messages, and how
	// often: any device of the account can send them, broadcasts included.
	Commands Commands `yaml:"commands"`
}

// Commands is the `commands:` block: which devices' messages are taken as
// commands, and a token bucket per sender.
type Commands struct {
	// From lists the device names whose messages are taken as commands;
	// empty means any device of the account. Messages from others are
	// ignored and counted (commands_refused).
	From []string `yaml:"from"`
	// PerMinute is how many commands one sender may have handled per minute
	// once its burst is spent; the rest are dropped and counted
	// (commands_rate_limited).
	PerMinute int `yaml:"per_minute"`
	// Burst is how many commands one sender may send at once.
	Burst int `yaml:"burst"`
}

// Stream configures the raw stream pushed with PUT input.raw.
type Stream struct {
	Sensor   string        `yaml:"sensor"`   // the sensor pushed as the stream (a camera for RAW_JPEG, a motion sensor for DEFLATE_JSON)
	Subproto string        `yaml:"subproto"` // stream subprotocol, e.g. RAW_JPEG or DEFLATE_JSON
	Delta    conf.Duration `yaml:"delta"`    // the stream's frame interval announced to the server
	// Start is auto (stream while connected) or manual (only after a
	// stream_start message).
	Start string `yaml:"start"`
}

// Subprotocols the link can produce.
const (
	SubprotoRawJPEG     = "RAW_JPEG"     // one camera still per frame
	SubprotoDeflateJSON = "DEFLATE_JSON" // one deflated JSON window of motion rows per frame
)

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Stream.Subproto == "" {
		c.Stream.Subproto = SubprotoRawJPEG
	}
	if c.Stream.Delta == 0 {
		c.Stream.Delta = conf.Duration(400 * time.Millisecond)
	}
	if c.Stream.Start == "" {
		c.Stream.Start = "auto"
	}
	if c.Poll == 0 {
		c.Poll = conf.Duration(10 * time.Second)
	}
	if c.PollFast == 0 {
		// Never slower than poll, so a config that set only a short poll
		// stays valid.
		c.PollFast = min(conf.Duration(2*time.Second), c.Poll)
	}
	if c.PollFastFor == 0 {
		c.PollFastFor = conf.Duration(time.Minute)
	}
	if c.Commands.PerMinute == 0 {
		c.Commands.PerMinute = 12
	}
	if c.Commands.Burst == 0 {
		c.Commands.Burst = 6
	}
}

// Validate records every problem with the block and resolves secrets.
func (c *Config) Validate(v *conf.Validator) {
	v.URL("url", c.URL, true, "http", "https")
	v.Required("user", c.User)
	c.Password = v.Secret("password", c.Password, "password_file", c.PasswordFile, true)
	if c.Device != "" {
		if err := checkName("device", c.Device); err != nil {
			v.Errorf("device", "%v", err)
		}
	}
	if c.Stream.Sensor != "" {
		if err := checkName("subproto", c.Stream.Subproto); err != nil {
			v.Errorf("stream.subproto", "%v", err)
		}
	}
	if c.Stream.Delta.D() < 400*time.Millisecond || c.Stream.Delta.D() > time.Minute {
		v.Errorf("stream.delta", "must be between 400ms and 1m (the server paces viewers at >= 400ms)")
	}
	v.OneOf("stream.start", c.Stream.Start, "auto", "manual")
	if c.Poll.D() < time.Second {
		v.Errorf("poll", "must be >= 1s (each poll costs one request of the per-minute budget)")
	}
	if c.PollFast.D() < time.Second || c.PollFast > c.Poll {
		v.Errorf("poll_fast", "must be between 1s and poll (%v)", c.Poll.D())
	}
	if c.PollFastFor.D() < time.Second || c.PollFastFor.D() > time.Hour {
		v.Errorf("poll_fast_for", "must be between 1s and 1h")
	}
	if c.Heartbeat != 0 && c.Heartbeat.D() < time.Second {
		v.Errorf("heartbeat", "must be >= 1s or 0 (derived)")
	}
	for i, d := range c.Commands.From {
		if err := checkName("device name", d); err != nil {
			v.Errorf(fmt.Sprintf("commands.from[%d]", i), "%v", err)
		}
	}
	if c.Commands.PerMinute < 1 || c.Commands.PerMinute > 600 {
		v.Errorf("commands.per_minute", "must be between 1 and 600")
	}
	if c.Commands.Burst < 1 || c.Commands.Burst > 100 {
		v.Errorf("commands.burst", "must be between 1 and 100")
	}
	if c.CAFile != "" && c.InsecureSkipVerify {
		v.Warnf("insecure_skip_verify", "set together with ca_file; the CA is ignored")
	}
}

// SensorNames maps config fields to the sensors they name, for the loader's
// cross-check.
func (c *Config) SensorNames() map[string]string {
	out := map[string]string{}
	if c.Stream.Sensor != "" {
		out["stream.sensor"] = c.Stream.Sensor
	}
	if c.Snapshot != "" {
		out["snapshot"] = c.Snapshot
	}
	return out
}

func (c *Config) snapshotSensor() string {
	if c.Snapshot != "" {
		return c.Snapshot
	}
	return c.Stream.Sensor
}

func (c *Config) deltaMS() string { return fmt.Sprint(c.Stream.Delta.D().Milliseconds()) }
