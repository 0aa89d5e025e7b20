package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/config"
)

const inferenceBase = `
state_dir: /tmp/x
sensors:
  - name: mic
    kind: synthetic
    synthetic: {signal: audio}
  - name: cam
    kind: synthetic
    synthetic: {signal: camera}
links:
  - name: ei
    kind: edgeimpulse
    edgeimpulse: {api_key: ei_x, sensors: [mic]}
  - name: fio
    kind: camserver
    camserver: {url: "https://cams.example", user: u, password: p}
inference:
`

func TestInferenceConfig(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte(inferenceBase+`
  - name: kws
    sensor: mic
    edgeimpulse: ei
    variant: int8
    check_every: 1h
  - name: people
    sensor: cam
    model: /opt/models/people.eim
    interval: 250ms
    timeout: 2s
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inference) != 2 {
		t.Fatalf("%d entries", len(cfg.Inference))
	}
	k, p := cfg.Inference[0], cfg.Inference[1]
	if k.Name != "kws" || k.Sensor != "mic" || k.EdgeImpulse != "ei" || k.Variant != "int8" || k.CheckEvery.D().Hours() != 1 {
		t.Errorf("kws = %+v", k)
	}
	if p.Model != "/opt/models/people.eim" || p.Interval.D().Milliseconds() != 250 || p.Timeout.D().Seconds() != 2 {
		t.Errorf("people = %+v", p)
	}
}

func TestInferenceConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		name, entry, want string
	}{
		{"no model", "  - {name: m, sensor: mic}", "inference[0].model: required"},
		{"unknown sensor", "  - {name: m, sensor: nope, model: /m.eim}", `inference[0].sensor: no sensor named "nope"`},
		{"name of a sensor", "  - {name: cam, sensor: cam, model: /m.eim}", `inference[0].name: "cam" is used twice`},
		{"not an edgeimpulse link", "  - {name: m, sensor: cam, edgeimpulse: fio}", "is a camserver link, not edgeimpulse"},
		{"unknown link", "  - {name: m, sensor: cam, edgeimpulse: nope}", `no link named "nope"`},
		{"bad variant", "  - {name: m, sensor: mic, edgeimpulse: ei, variant: int4}", "inference[0].variant"},
		{"local and download keys", "  - {name: m, sensor: mic, model: /m.eim, target: runner-linux-aarch64}", "target, variant and check_every do not apply"},
		{"checks too often", "  - {name: m, sensor: mic, edgeimpulse: ei, check_every: 10s}", "at least 1m"},
		{"one link, two models", "  - {name: m, sensor: mic, edgeimpulse: ei}\n  - {name: n, sensor: cam, edgeimpulse: ei}", `already reports model "m"`},
		{"unknown key", "  - {name: m, sensor: mic, model: /m.eim, timout: 1s}", `unknown key "timout" (did you mean "timeout"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("c.yaml", []byte(inferenceBase+tc.entry+"\n"))
			var ce *config.Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
