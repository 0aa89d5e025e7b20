package command

import (
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/conf/conftest"
	"github.com/edge-agent/edge-agent/sensors"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // fields with problems
	}{
		{name: "ok h264", cfg: Config{Argv: []string{"rpicam-vid", "-o", "-"}, Output: "h264", Rate: 30}},
		{name: "ok pcm", cfg: Config{Argv: []string{"arecord"}, Output: "pcm", Rate: 16000}},
		{name: "no argv", cfg: Config{Output: "h264", Rate: 30}, want: []string{"argv"}},
		{name: "empty program", cfg: Config{Argv: []string{""}, Output: "h264", Rate: 30}, want: []string{"argv[0]"}},
		{name: "bad output and rate", cfg: Config{Argv: []string{"x"}, Output: "mp4"}, want: []string{"output", "rate"}},
		{name: "fractional pcm rate", cfg: Config{Argv: []string{"x"}, Output: "pcm", Rate: 16000.5}, want: []string{"rate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := conftest.Validate(&tc.cfg)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("problems at %v, want %v (%v)", got, tc.want, problems)
			}
			if len(tc.want) == 0 {
				if _, err := New("x", tc.cfg, sensors.Env{}); err != nil {
					t.Errorf("New: %v", err)
				}
			}
		})
	}
}
