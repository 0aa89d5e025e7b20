// Package conftest checks a driver's or link's sample config file the way
// the agent's loader would: defaults first, strict keys, then Validate.
package conftest

import (
	"bytes"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Config is what every kind's config block implements.
type Config interface {
	SetDefaults()
	Validate(v *conf.Validator)
}

// Check decodes the YAML block at path into cfg over its defaults, rejecting
// unknown keys, and fails t on any decode or validation problem.
func Check(t testing.TB, path string, cfg Config) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key fails here as it does in the loader
	if err := dec.Decode(cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v := conf.NewValidator()
	cfg.Validate(v)
	if p := v.Problems(); len(p) != 0 {
		t.Fatalf("%s: %v", path, p)
	}
}

// Validate runs cfg.Validate and returns the field paths of its problems, in
// order, with the problems themselves for messages: table tests compare the
// paths.
func Validate(cfg Config) ([]string, []conf.Problem) {
	v := conf.NewValidator()
	cfg.Validate(v)
	var paths []string
	for _, p := range v.Problems() {
		paths = append(paths, p.Path)
	}
	return paths, v.Problems()
}
