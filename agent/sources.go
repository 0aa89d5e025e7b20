package agent

import (
	"fmt"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/kinds"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
)

// NewSource builds the driver for one configured sensor through its kind's
// row in kinds.Sensors.
func NewSource(s config.Sensor, env sensors.Env) (sensors.Source, error) {
	k, ok := kinds.Find(kinds.Sensors, s.Kind)
	if !ok {
		return nil, fmt.Errorf("sensor %q: unknown kind %q", s.Name, s.Kind)
	}
	return k.New(s.Name, s.Block, env)
}

// NewLink builds one configured link through its kind's row in kinds.Links.
func NewLink(l config.Link, deps transport.Deps) (transport.Link, error) {
	k, ok := kinds.Find(kinds.Links, l.Kind)
	if !ok {
		return nil, fmt.Errorf("link %q: unknown kind %q", l.Name, l.Kind)
	}
	return k.New(l.Block, deps)
}
