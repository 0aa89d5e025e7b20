package audio

import (
	"testing"

	"github.com/edge-agent/edge-agent/internal/conf/conftest"
)

// TestExampleConfig keeps example.yaml (shown in README.md) valid: strict
// keys, defaults, no validation problems.
func TestExampleConfig(t *testing.T) {
	conftest.Check(t, "example.yaml", new(Config))
}
