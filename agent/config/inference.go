package config

import (
	"fmt"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Inference is one on-device model (`inference[]`): an Edge Impulse .eim
// model run on one sensor's data by agent/infer. Its results are a stream
// on the hub under Name, which links, rules and `edge-agent infer`
// subscribe to like a sensor; /status and /metrics show them per label.
type Inference struct {
	// Name names the results stream; it shares the sensors' names (a
	// sensor and a model cannot have the same name).
	Name string `yaml:"name"`
	// Sensor is the configured sensor the model classifies: a camera
	// (still frames) for image models, a microphone for audio models, a
	// motion sensor for the others; the model's hello says which it is.
	Sensor string `yaml:"sensor"`
	// Model is the path of a local .eim file. Without it the model is
	// downloaded from Studio through the edgeimpulse link.
	Model string `yaml:"model"`
	// EdgeImpulse names an edgeimpulse link: without model, the model is
	// the newest deployment of the project of the link's API key for this
	// board's architecture (downloaded from its studio_url, cached in
	// state_dir/models/NAME with its SHA-256); and the link reports the
	// model to Studio (Hello version 4), streams results when Studio asks
	// (startInferenceStream) and updates the model on newModelAvailable.
	EdgeImpulse string `yaml:"edgeimpulse"`
	// Target is the Studio deployment type to download; empty means the
	// one of this board's architecture (runner-linux-aarch64,
	// runner-linux-armv7 or runner-linux-x86_64). Set it for the hardware
	// variants (runner-linux-aarch64-jetson-orin, …).
	Target string `yaml:"target"`
	// Variant is the model variant to download: int8 (quantized), float32,
	// or empty for the project's default.
	Variant string `yaml:"variant"`
	// CheckEvery is how often Studio is asked for a newer deployment
	// besides newModelAvailable; 0 (the default) asks only at start while
	// no model is cached.
	CheckEvery conf.Duration `yaml:"check_every"`
	// Interval is how often a sliding window is classified (motion, and
	// audio models outside continuous mode); 0 means every quarter window.
	// Audio models in continuous mode classify every slice the model
	// states, and image models every frame they can keep up with.
	Interval conf.Duration `yaml:"interval"`
	// Timeout bounds one classification; a model that takes longer is
	// killed and started again. 0 means 5s.
	Timeout conf.Duration `yaml:"timeout"`
	// StartTimeout bounds a model's start (its socket and hello). 0 means
	// 30s; a TensorRT model warming up on a Jetson may need more.
	StartTimeout conf.Duration `yaml:"start_timeout"`
}

// validate checks entry i of inference[] against the sensors and links.
func (in *Inference) validate(v *conf.Validator, c *Config, names map[string]bool) {
	checkName(v, in.Name, names)
	if v.Required("sensor", in.Sensor) {
		found := false
		for _, s := range c.Sensors {
			found = found || s.Name == in.Sensor
		}
		if !found {
			v.Errorf("sensor", "no sensor named %q", in.Sensor)
		}
	}
	if in.EdgeImpulse != "" {
		var kind string
		for _, l := range c.Links {
			if l.Name == in.EdgeImpulse {
				kind = l.Kind
				if l.Disabled && in.Model == "" {
					v.Errorf("edgeimpulse", "link %q is disabled, and the model is downloaded through it", in.EdgeImpulse)
				}
			}
		}
		switch kind {
		case "":
			v.Errorf("edgeimpulse", "no link named %q", in.EdgeImpulse)
		case "edgeimpulse":
		default:
			v.Errorf("edgeimpulse", "link %q is a %s link, not edgeimpulse", in.EdgeImpulse, kind)
		}
	}
	if in.Model == "" && in.EdgeImpulse == "" {
		v.Errorf("model", "required (a .eim file), or edgeimpulse (a link to download the model through)")
	}
	if in.Model != "" && (in.Target != "" || in.Variant != "" || in.CheckEvery != 0) {
		v.Errorf("model", "a local model is not downloaded: target, variant and check_every do not apply")
	}
	if in.Variant != "" {
		v.OneOf("variant", in.Variant, "int8", "float32")
	}
	for field, d := range map[string]conf.Duration{"check_every": in.CheckEvery, "interval": in.Interval,
		"timeout": in.Timeout, "start_timeout": in.StartTimeout} {
		if d < 0 {
			v.Errorf(field, "must be >= 0")
		}
	}
	if in.CheckEvery != 0 && in.CheckEvery.D().Minutes() < 1 {
		v.Errorf("check_every", "must be at least 1m (or 0): each check is a request to Studio")
	}
}

// validateInference checks every inference[] entry; sensorNames holds the
// sensors' names, which the models' streams share.
func (c *Config) validateInference(v *conf.Validator, sensorNames map[string]bool) {
	names := map[string]bool{}
	for k := range sensorNames {
		names[k] = true
	}
	reported := map[string]string{} // edgeimpulse link → the model it reports
	for i := range c.Inference {
		in := &c.Inference[i]
		iv := v.At(fmt.Sprintf("inference[%d]", i))
		in.validate(iv, c, names)
		if in.EdgeImpulse == "" {
			continue
		}
		if other, dup := reported[in.EdgeImpulse]; dup {
			iv.Errorf("edgeimpulse", "link %q already reports model %q (Studio knows one model per device)", in.EdgeImpulse, other)
		}
		reported[in.EdgeImpulse] = in.Name
	}
}
