package command_test

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/command"
)

// TestSampleConfig keeps testdata/sample.yaml (quoted in README.md) valid:
// strict keys, defaults, Validate, New.
func TestSampleConfig(t *testing.T) {
	f, err := os.Open("testdata/sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var file struct {
		Sensors []struct {
			Name    string          `yaml:"name"`
			Kind    string          `yaml:"kind"`
			Command *command.Config `yaml:"command"`
		} `yaml:"sensors"`
	}
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true) // a misspelt key fails here as it does in the loader
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	want := map[string]sensors.Class{"picam": sensors.Video, "usb-mjpeg": sensors.Still, "mic": sensors.Audio}
	if len(file.Sensors) != len(want) {
		t.Fatalf("%d sensors", len(file.Sensors))
	}
	for _, s := range file.Sensors {
		if s.Command == nil {
			t.Fatalf("%s: no command block", s.Name)
		}
		// SetDefaults fills only zero fields, so after the decode it gives
		// what the loader's defaults-then-decode gives.
		s.Command.SetDefaults()
		v := conf.NewValidator()
		s.Command.Validate(v)
		if p := v.Problems(); len(p) > 0 || s.Kind != "command" {
			t.Fatalf("%s (kind %s): %v", s.Name, s.Kind, p)
		}
		src, err := command.New(s.Name, *s.Command, sensors.Env{})
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if got := src.Info().Class; got != want[s.Name] {
			t.Errorf("%s: class %v, want %v", s.Name, got, want[s.Name])
		}
	}
}
