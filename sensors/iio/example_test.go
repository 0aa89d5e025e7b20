package iio

import (
	"bytes"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// TestExampleConfig keeps example.yaml (shown in README.md) valid: strict
// keys, defaults, no validation problems.
func TestExampleConfig(t *testing.T) {
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	c.SetDefaults()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	v := conf.NewValidator()
	c.Validate(v)
	if p := v.Problems(); len(p) != 0 {
		t.Fatalf("example.yaml: %v", p)
	}
}
