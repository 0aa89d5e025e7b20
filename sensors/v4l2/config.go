// Package v4l2 captures a V4L2 camera: MJPEG or YUYV stills and H.264 access
// units.
//
// The device calls live in device_linux.go (through the videodev ioctl
// layer) behind the FrameSource interface;
// everything else (format choice, MJPEG passthrough, YUYV to JPEG, H.264
// access units, releasing the device when the hub stops the source) is
// plain Go tested against v4l2test's replaying fake.
package v4l2

import (
	"cmp"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
)

// Config is the `v4l2:` block of a sensor.
type Config struct {
	Device string  `yaml:"device"` // the video node; prefer the stable /dev/v4l/by-id/… name
	Format string  `yaml:"format"` // mjpeg | yuyv | h264 | auto
	Width  int     `yaml:"width"`  // frame width; 0 picks the size nearest 640x480
	Height int     `yaml:"height"` // frame height; 0 picks the size nearest 640x480
	FPS    float64 `yaml:"fps"`    // frames per second asked of the camera
	// FirstFrameTimeout is how long the camera may take from being opened to
	// its first frame before the agent closes it and opens it again (with
	// backoff); a USB camera can take a few seconds to start streaming.
	FirstFrameTimeout conf.Duration `yaml:"first_frame_timeout"`
	// StallTimeout is how long the camera may go without a frame, once it
	// has sent one, before the agent closes it and opens it again: a UVC
	// camera that wedges keeps its node and never reports an error. At
	// least three frame intervals at the camera's real rate are allowed.
	StallTimeout conf.Duration `yaml:"stall_timeout"`
}

// Default watchdog timeouts (Config.FirstFrameTimeout, Config.StallTimeout).
const (
	DefaultFirstFrameTimeout = 10 * time.Second
	DefaultStallTimeout      = 3 * time.Second
)

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Device == "" {
		c.Device = "/dev/video0"
	}
	if c.Format == "" {
		c.Format = "auto"
	}
	if c.FPS == 0 {
		c.FPS = 15
	}
	c.FirstFrameTimeout = cmp.Or(c.FirstFrameTimeout, conf.Duration(DefaultFirstFrameTimeout))
	c.StallTimeout = cmp.Or(c.StallTimeout, conf.Duration(DefaultStallTimeout))
}

// Validate records every problem with the block.
func (c *Config) Validate(v *conf.Validator) {
	v.Required("device", c.Device)
	v.OneOf("format", c.Format, "auto", "mjpeg", "yuyv", "h264")
	v.Positive("fps", c.FPS)
	if c.Width < 0 || c.Height < 0 {
		v.Errorf("width", "must be >= 0 (0 picks the best match)")
	}
}

// New returns the camera sensor. The device is opened by Run, not here, so a
// camera that is unplugged at start-up is retried by the hub. The device
// path is taken relative to env.DevRoot when it starts with /dev/ and
// DevRoot is not "/dev" (tests and containers).
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	if _, ok := fourCCByName[cfg.Format]; !ok && cfg.Format != "auto" {
		return nil, fmt.Errorf("v4l2 sensor %q: unknown format %q", name, cfg.Format)
	}
	if env.DevRoot != "" && env.DevRoot != "/dev" && strings.HasPrefix(cfg.Device, "/dev/") {
		cfg.Device = filepath.Join(env.DevRoot, strings.TrimPrefix(cfg.Device, "/dev/"))
	}
	return NewSource(name, cfg, env), nil
}
