package agent

import (
	"fmt"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/audio"
	"github.com/edge-agent/edge-agent/sensors/command"
	"github.com/edge-agent/edge-agent/sensors/iio"
	"github.com/edge-agent/edge-agent/sensors/serial"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/sensors/v4l2"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/rtm"
)

// NewSource builds the driver for one configured sensor. This switch is the
// whole kind → driver table: explicit, no init() registration.
func NewSource(s config.Sensor, env sensors.Env) (sensors.Source, error) {
	switch s.Kind {
	case "iio":
		return iio.New(s.Name, *s.IIO, env)
	case "serial":
		return serial.New(s.Name, *s.Serial, env)
	case "microphone":
		return audio.New(s.Name, *s.Microphone, env)
	case "v4l2":
		return v4l2.New(s.Name, *s.V4L2, env)
	case "command":
		return command.New(s.Name, *s.Command, env)
	case "synthetic":
		return synthetic.New(s.Name, *s.Synthetic, env)
	}
	return nil, fmt.Errorf("sensor %q: unknown kind %q", s.Name, s.Kind)
}

// NewLink builds one configured link: the kind → link table.
func NewLink(l config.Link, deps transport.Deps) (transport.Link, error) {
	switch l.Kind {
	case "edgeimpulse":
		return edgeimpulse.New(*l.EdgeImpulse, deps, edgeimpulse.Options{})
	case "rtm":
		return rtm.New(*l.RTM, deps, rtm.Options{})
	case "frameio":
		return frameio.New(*l.FrameIO, deps, frameio.Options{})
	case "camserver":
		return camserver.New(*l.CamServer, deps, camserver.Options{})
	}
	return nil, fmt.Errorf("link %q: unknown kind %q", l.Name, l.Kind)
}
