package v4l2_test

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/v4l2"
)

// TestSampleConfig keeps testdata/sample.yaml (quoted in README.md) valid:
// strict keys, defaults, Validate, New.
// It does not use agent/config so that the driver's tests build without the
// links (which the loader imports).
func TestSampleConfig(t *testing.T) {
	f, err := os.Open("testdata/sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var file struct {
		Sensors []struct {
			Name string       `yaml:"name"`
			Kind string       `yaml:"kind"`
			V4L2 *v4l2.Config `yaml:"v4l2"`
		} `yaml:"sensors"`
	}
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true) // a misspelt key fails here as it does in the loader
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	for _, s := range file.Sensors {
		if s.V4L2 == nil {
			t.Fatalf("%s: no v4l2 block", s.Name)
		}
		// SetDefaults fills only zero fields, so after the decode it gives
		// what the loader's defaults-then-decode gives.
		s.V4L2.SetDefaults()
		v := conf.NewValidator()
		s.V4L2.Validate(v)
		if p := v.Problems(); len(p) > 0 || s.Kind != "v4l2" {
			t.Fatalf("%s (kind %s): %v", s.Name, s.Kind, p)
		}
		src, err := v4l2.New(s.Name, *s.V4L2, sensors.Env{})
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if got := src.Info().Class; (s.V4L2.Format == "h264") != (got == sensors.Video) {
			t.Errorf("%s: class %v for format %s", s.Name, got, s.V4L2.Format)
		}
	}
}
