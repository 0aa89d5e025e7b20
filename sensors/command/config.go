// Package command runs an external encoder (rpicam-vid, libcamera-vid,
// ffmpeg, arecord) whose stdout is the sensor: H.264 Annex-B split into
// access units, MJPEG split into JPEG stills, or raw s16le mono PCM.
//
// The process is started by Run and stopped when Run's context ends (SIGTERM
// to its process group, then SIGKILL after a grace period). When it exits by
// itself Run returns an error and the hub restarts it with backoff. When it
// keeps running but stops writing (or never starts), the hub's watchdog
// stops it and starts it again the same way (Source.StallTimeouts). Its
// stderr goes to the log, rate-limited. A command source cannot force a
// keyframe: encoders on a pipe take no requests, so links wait for the
// encoder's own keyframe interval (pass e.g. `--intra 15` to rpicam-vid).
package command

import (
	"cmp"
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
)

// Config is the `command:` block of a sensor.
type Config struct {
	// Argv is the command and its arguments (no shell).
	Argv []string `yaml:"argv"`
	// Output is what the command writes: h264 (Annex-B), mjpeg, or pcm
	// (s16le mono at Rate).
	Output string  `yaml:"output"`
	Width  int     `yaml:"width"`  // frame width the command produces (announced to links)
	Height int     `yaml:"height"` // frame height the command produces
	Rate   float64 `yaml:"rate"`   // fps for video, sample rate for pcm
	// FirstFrameTimeout is how long the command may take from its start to
	// its first frame (or PCM block) before the agent stops it and starts
	// it again (with backoff); rpicam-vid takes a few seconds to set up the
	// camera.
	FirstFrameTimeout conf.Duration `yaml:"first_frame_timeout"`
	// StallTimeout is how long the command may go without writing a frame,
	// once it has written one, before the agent stops it and starts it
	// again: an encoder whose camera hangs keeps running and writes nothing.
	// At least three frame intervals at rate are allowed.
	StallTimeout conf.Duration `yaml:"stall_timeout"`
}

// Default watchdog timeouts (Config.FirstFrameTimeout, Config.StallTimeout).
const (
	DefaultFirstFrameTimeout = 10 * time.Second
	DefaultStallTimeout      = 3 * time.Second
)

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Output == "" {
		c.Output = "h264"
	}
	c.FirstFrameTimeout = cmp.Or(c.FirstFrameTimeout, conf.Duration(DefaultFirstFrameTimeout))
	c.StallTimeout = cmp.Or(c.StallTimeout, conf.Duration(DefaultStallTimeout))
}

// Validate records every problem with the block.
func (c *Config) Validate(v *conf.Validator) {
	if len(c.Argv) == 0 {
		v.Errorf("argv", "required")
	} else if c.Argv[0] == "" {
		v.Errorf("argv[0]", "must name a program")
	}
	v.OneOf("output", c.Output, "h264", "mjpeg", "pcm")
	v.Positive("rate", c.Rate)
	if c.Output == "pcm" && c.Rate != float64(int(c.Rate)) {
		v.Errorf("rate", "a PCM sample rate must be a whole number")
	}
	if c.Width < 0 || c.Height < 0 {
		v.Errorf("width", "must be >= 0")
	}
}

// New returns the sensor. The command is started by Run, not here.
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	if len(cfg.Argv) == 0 || cfg.Argv[0] == "" {
		return nil, fmt.Errorf("command sensor %q: argv is empty", name)
	}
	switch cfg.Output {
	case "h264", "mjpeg", "pcm":
	default:
		return nil, fmt.Errorf("command sensor %q: unknown output %q", name, cfg.Output)
	}
	if !(cfg.Rate > 0) {
		return nil, fmt.Errorf("command sensor %q: rate must be > 0", name)
	}
	return NewSource(name, cfg, env), nil
}
