package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// Rule turns a model's results into actions on the links (`rules[]`,
// agent/rules): when Label scores at least MinScore in every result for
// For, each action of Then runs once. A rule fires once per episode: it is
// armed again only after a result in which the label scores below
// MinScore, and never fires twice within MinInterval.
type Rule struct {
	// Name names the rule in the log, /status and /metrics.
	Name string `yaml:"name"`
	// Model is the name of the inference[] entry whose results the rule
	// watches.
	Model string `yaml:"model"`
	When  When   `yaml:"when"`
	// Then lists the actions: rtm.record (start a recording),
	// frameio.upload_still (upload the frame) and camserver.message (tell
	// the account's devices). Each is written as its name (`- rtm.record`)
	// or as one key, its name, holding the options below
	// (`- camserver.message: {msg: detected}`).
	Then []Action `yaml:"then"`
	// MinInterval is the least time between two firings of the rule; an
	// episode that ends sooner is counted as suppressed. 0 means 30s; at
	// least 1s.
	MinInterval conf.Duration `yaml:"min_interval"`
}

// When is a rule's condition.
type When struct {
	// Label is one of the model's labels, or "anomaly" for its anomaly
	// score.
	Label string `yaml:"label"`
	// MinScore is the score the label must reach (classification: the
	// label's probability; object detection: its best box; anomaly: the
	// anomaly score). 0 means 0.5.
	MinScore float64 `yaml:"min_score"`
	// For is how long the label must hold, measured on the results'
	// capture times; 0 fires on the first result that reaches MinScore.
	For conf.Duration `yaml:"for"`
}

// The actions a rule can take.
const (
	// ActionRecord starts an RTM recording (the rtm link's recording
	// control) and stops it after For.
	ActionRecord = "rtm.record"
	// ActionUploadStill spools the frame the model classified (or a fresh
	// one from Sensor) as a Frame.io asset.
	ActionUploadStill = "frameio.upload_still"
	// ActionMessage sends a camera-server message (addMsgs) to the
	// devices of the account.
	ActionMessage = "camserver.message"
)

// Actions lists every action with the link kind that carries it out.
var Actions = map[string]string{ActionRecord: "rtm", ActionUploadStill: "frameio", ActionMessage: "camserver"}

// Action is one step of a rule's `then:`. In the file it is written as its
// name alone (`- rtm.record`) or as one key, the name, holding its options
// (`- rtm.record: {for: 1m}`); Do is that name.
type Action struct {
	Do string `yaml:"-"`
	// Link names the link that carries the action out; empty means the
	// one enabled link of the action's kind.
	Link string `yaml:"link,omitempty"`
	// For (rtm.record) is how long the recording runs before it is
	// stopped; a new firing meanwhile extends it, and while another rule's
	// recording on the same link runs on, the link keeps recording until
	// that one's time is up too. 0 means 30s.
	For conf.Duration `yaml:"for,omitempty"`
	// Sensor (frameio.upload_still) is a still sensor to take a fresh
	// frame from; empty means the frame the model classified (image
	// models only).
	Sensor string `yaml:"sensor,omitempty"`
	// Msg (camserver.message) is the message's name.
	Msg string `yaml:"msg,omitempty"`
	// Target (camserver.message) is the device the message is for; empty
	// sends it to every device of the account.
	Target string `yaml:"target,omitempty"`
	// Params (camserver.message) is the message's JSON object; the rule
	// adds rule, model, label and score to it.
	Params map[string]any `yaml:"params,omitempty"`
}

// actionOptions is Action without Do, so that decoding the options does not
// recurse into Action.UnmarshalYAML.
type actionOptions struct {
	Link   string         `yaml:"link"`
	For    conf.Duration  `yaml:"for"`
	Sensor string         `yaml:"sensor"`
	Msg    string         `yaml:"msg"`
	Target string         `yaml:"target"`
	Params map[string]any `yaml:"params"`
}

// UnmarshalYAML reads an action written as `name` or `name: {options}`.
func (a *Action) UnmarshalYAML(n *yaml.Node) error {
	const shape = "an action is its name (rtm.record) or one key, its name, holding its options (camserver.message: {msg: detected})"
	switch {
	case n.Kind == yaml.ScalarNode:
		*a = Action{Do: n.Value}
		return nil
	case n.Kind != yaml.MappingNode || len(n.Content) != 2:
		return fmt.Errorf("line %d: %s", n.Line, shape)
	}
	key, val := n.Content[0], n.Content[1]
	*a = Action{Do: key.Value}
	if isNull(val) {
		return nil
	}
	if val.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: the options of %s must be a mapping: %s", val.Line, key.Value, shape)
	}
	known := []string{"link", "for", "sensor", "msg", "target", "params"}
	for i := 0; i+1 < len(val.Content); i += 2 {
		if k := val.Content[i]; !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: %s: unknown option %q (known: %s)", k.Line, key.Value, k.Value, strings.Join(known, ", "))
		}
	}
	var o actionOptions
	if err := val.Decode(&o); err != nil {
		return fmt.Errorf("%s: %w", key.Value, err)
	}
	a.Link, a.For, a.Sensor, a.Msg, a.Target, a.Params = o.Link, o.For, o.Sensor, o.Msg, o.Target, o.Params
	return nil
}

// MarshalYAML writes the action back in the shape it is read in.
func (a Action) MarshalYAML() (any, error) {
	o := actionOptions{Link: a.Link, For: a.For, Sensor: a.Sensor, Msg: a.Msg, Target: a.Target, Params: a.Params}
	if o.Link == "" && o.For == 0 && o.Sensor == "" && o.Msg == "" && o.Target == "" && len(o.Params) == 0 {
		return a.Do, nil
	}
	opts := map[string]any{}
	for k, v := range map[string]any{"link": o.Link, "sensor": o.Sensor, "msg": o.Msg, "target": o.Target} {
		if v != "" {
			opts[k] = v
		}
	}
	if o.For != 0 {
		opts["for"] = o.For
	}
	if len(o.Params) > 0 {
		opts["params"] = o.Params
	}
	return map[string]any{a.Do: opts}, nil
}

// Rule defaults.
const (
	DefaultMinScore    = 0.5
	DefaultMinInterval = conf.Duration(30e9)
	DefaultRecordFor   = conf.Duration(30e9)
)

// setDefaults fills a rule's zero fields.
func (r *Rule) setDefaults() {
	if r.When.MinScore == 0 {
		r.When.MinScore = DefaultMinScore
	}
	if r.MinInterval == 0 {
		r.MinInterval = DefaultMinInterval
	}
	for i := range r.Then {
		if r.Then[i].Do == ActionRecord && r.Then[i].For == 0 {
			r.Then[i].For = DefaultRecordFor
		}
	}
}

// validateRules checks every rules[] entry against the models, sensors and
// links.
func (c *Config) validateRules(v *conf.Validator) {
	names := map[string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		r.setDefaults()
		rv := v.At(fmt.Sprintf("rules[%d]", i))
		checkName(rv, r.Name, names)
		if rv.Required("model", r.Model) && !slices.ContainsFunc(c.Inference, func(in Inference) bool { return in.Name == r.Model }) {
			rv.Errorf("model", "no inference[] entry named %q", r.Model)
		}
		rv.Required("when.label", r.When.Label)
		if r.When.MinScore < 0 {
			rv.Errorf("when.min_score", "must be >= 0")
		}
		if r.When.For < 0 {
			rv.Errorf("when.for", "must be >= 0")
		}
		if r.MinInterval < conf.Duration(1e9) {
			rv.Errorf("min_interval", "must be at least 1s (or 0 for 30s): each firing acts on the clouds")
		}
		if len(r.Then) == 0 {
			rv.Errorf("then", "required: at least one action (%s)", strings.Join(actionNames(), ", "))
		}
		for j := range r.Then {
			c.validateAction(rv.At(fmt.Sprintf("then[%d]", j)), &r.Then[j])
		}
	}
}

func actionNames() []string {
	var out []string
	for name := range Actions {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// validateAction checks one action and resolves its link when the config
// has exactly one enabled link of the action's kind.
func (c *Config) validateAction(v *conf.Validator, a *Action) {
	kind, ok := Actions[a.Do]
	if !ok {
		v.Errorf("", "unknown action %q (known: %s)", a.Do, strings.Join(actionNames(), ", "))
		return
	}
	a.Link = c.actionLink(v, kind, a.Link)
	if a.Do == ActionRecord {
		for _, l := range c.Links {
			if r, ok := l.Block.(interface{ RecordsAlways() bool }); ok && l.Name == a.Link && r.RecordsAlways() {
				v.Warnf("link", "rtm link %q records all the time (record.start: auto): the rule's recording stops it after %s; set record.start: manual", a.Link, a.For.D())
			}
		}
	}
	if a.For != 0 && a.Do != ActionRecord {
		v.Errorf("for", "only rtm.record takes for")
	}
	if a.For < 0 {
		v.Errorf("for", "must be >= 0")
	}
	if a.Sensor != "" {
		if a.Do != ActionUploadStill {
			v.Errorf("sensor", "only frameio.upload_still takes sensor")
		} else if !slices.ContainsFunc(c.Sensors, func(s Sensor) bool { return s.Name == a.Sensor }) {
			v.Errorf("sensor", "no sensor named %q", a.Sensor)
		}
	}
	if a.Do != ActionMessage {
		if a.Msg != "" || a.Target != "" || len(a.Params) > 0 {
			v.Errorf("msg", "only camserver.message takes msg, target and params")
		}
		return
	}
	v.Required("msg", a.Msg)
	if _, err := json.Marshal(a.Params); err != nil {
		v.Errorf("params", "cannot be sent as JSON: %v", err)
	}
}

// actionLink returns the link an action of kind runs on: name when it names
// an enabled link of that kind, else the only enabled link of the kind.
func (c *Config) actionLink(v *conf.Validator, kind, name string) string {
	var found []string
	for _, l := range c.Links {
		if l.Kind != kind {
			if l.Name == name {
				v.Errorf("link", "link %q is a %s link, the action needs a %s link", name, l.Kind, kind)
				return name
			}
			continue
		}
		if l.Name == name && l.Disabled {
			v.Errorf("link", "link %q is disabled", name)
			return name
		}
		if !l.Disabled {
			found = append(found, l.Name)
		}
	}
	switch {
	case name != "":
		if !slices.Contains(found, name) {
			v.Errorf("link", "no %s link named %q", kind, name)
		}
		return name
	case len(found) == 1:
		return found[0]
	case len(found) == 0:
		v.Errorf("link", "no enabled %s link to carry the action out", kind)
	default:
		v.Errorf("link", "required: there are several %s links (%s)", kind, strings.Join(found, ", "))
	}
	return ""
}
