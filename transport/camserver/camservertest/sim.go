// Package camservertest is an in-process fake of the camserver service, like net/http/httptest.
package camservertest

import (
	"fmt"
	"log/slog"

	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
)

// NewSim starts the fake on listen (e.g. "127.0.0.1:0") for `edge-agent sim`
// and `edge-agent demo`. Until the fake is written it reports ErrNotBuilt.
func NewSim(listen string, logger *slog.Logger) (transport.SimService, error) {
	return nil, fmt.Errorf("camserver fake: %w", sensors.ErrNotBuilt)
}
