//go:build !cgo

package audio

import (
	"fmt"

	"github.com/edge-agent/edge-agent/sensors"
)

// New reports that this build has no microphone support: miniaudio needs
// cgo, and this binary was built with CGO_ENABLED=0.
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	return nil, fmt.Errorf("microphone sensor %q: %w", name, ErrNotCompiled)
}
