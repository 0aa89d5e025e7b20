package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/agent/config"
)

const rulesBase = `
state_dir: /tmp/x
sensors:
  - name: cam
    kind: synthetic
    synthetic: {signal: camera}
  - name: video
    kind: synthetic
    synthetic: {signal: h264}
links:
  - name: live
    kind: rtm
    rtm: {url: "wss://rtm.example/io", token: t, client_id: pi, video: video, record: {start: manual, upload_url: "https://up.example/r.mkv"}}
  - name: fio
    kind: frameio
    frameio: {client_id: c, client_secret: s}
  - name: cams
    kind: camserver
    camserver: {url: "https://cams.example", user: u, password: p}
inference:
  - name: people
    sensor: cam
    model: /opt/models/people.eim
rules:
`

// TestRulesConfig: the shapes of an action (a name, or a name holding its
// options), the defaults, and the link an action runs on when there is
// one of its kind.
func TestRulesConfig(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte(rulesBase+`
  - name: person
    model: people
    when: {label: person, min_score: 0.8, for: 2s}
    then:
      - rtm.record
      - frameio.upload_still
      - camserver.message: {msg: detected, params: {zone: door}}
  - name: quick
    model: people
    when: {label: cat}
    min_interval: 5s
    then: [{rtm.record: {link: live, for: 1m}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rules) != 2 {
		t.Fatalf("%d rules", len(cfg.Rules))
	}
	p, q := cfg.Rules[0], cfg.Rules[1]
	if p.When.Label != "person" || p.When.MinScore != 0.8 || p.When.For.D() != 2*time.Second || p.MinInterval != config.DefaultMinInterval {
		t.Errorf("person = %+v", p)
	}
	want := []config.Action{
		{Do: "rtm.record", Link: "live", For: config.DefaultRecordFor},
		{Do: "frameio.upload_still", Link: "fio"},
		{Do: "camserver.message", Link: "cams", Msg: "detected", Params: map[string]any{"zone": "door"}},
	}
	if len(p.Then) != len(want) {
		t.Fatalf("then = %+v", p.Then)
	}
	for i, a := range p.Then {
		if a.Do != want[i].Do || a.Link != want[i].Link || a.For != want[i].For || a.Msg != want[i].Msg || len(a.Params) != len(want[i].Params) {
			t.Errorf("then[%d] = %+v, want %+v", i, a, want[i])
		}
	}
	if q.When.MinScore != config.DefaultMinScore || q.MinInterval.D() != 5*time.Second || q.Then[0].For.D() != time.Minute {
		t.Errorf("quick = %+v", q)
	}

	// What the demo and the console write back reads the same.
	out, err := yaml.Marshal(cfg.Rules)
	if err != nil {
		t.Fatal(err)
	}
	var back []config.Rule
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	if len(back) != 2 || back[0].Then[2].Msg != "detected" || back[0].Then[0].Do != "rtm.record" || back[1].Then[0].For.D() != time.Minute {
		t.Errorf("marshalled and read back:\n%s\n%+v", out, back)
	}
}

func TestRulesConfigProblems(t *testing.T) {
	for _, tc := range []struct{ name, rule, want string }{
		{"no model", `
  - name: r
    model: nope
    when: {label: x}
    then: [rtm.record]`, `c.yaml:27: rules[0].model: no inference[] entry named "nope"`},
		{"no label", `
  - name: r
    model: people
    then: [rtm.record]`, `rules[0].when.label: required`},
		{"no action", `
  - name: r
    model: people
    when: {label: x}`, `rules[0].then: required`},
		{"unknown action", `
  - name: r
    model: people
    when: {label: x}
    then: [rtm.snapshot]`, `rules[0].then[0]: unknown action "rtm.snapshot"`},
		{"wrong kind of link", `
  - name: r
    model: people
    when: {label: x}
    then: [{rtm.record: {link: fio}}]`, `rules[0].then[0].link: link "fio" is a frameio link, the action needs a rtm link`},
		{"option of another action", `
  - name: r
    model: people
    when: {label: x}
    then: [{frameio.upload_still: {for: 1m}}]`, `rules[0].then[0].for: only rtm.record takes for`},
		{"message without msg", `
  - name: r
    model: people
    when: {label: x}
    then: [{camserver.message: {target: other}}]`, `rules[0].then[0].msg: required`},
		{"unknown option", `
  - name: r
    model: people
    when: {label: x}
    then:
      - camserver.message: {msg: m, parms: {}}`, `c.yaml:30: rules[0].then[0]: camserver.message: unknown option "parms"`},
		{"two keys", `
  - name: r
    model: people
    when: {label: x}
    then:
      - {rtm.record: {}, camserver.message: {msg: m}}`, `an action is its name`},
		{"too often", `
  - name: r
    model: people
    when: {label: x}
    min_interval: 100ms
    then: [rtm.record]`, `rules[0].min_interval: must be at least 1s`},
		{"unknown sensor", `
  - name: r
    model: people
    when: {label: x}
    then: [{frameio.upload_still: {sensor: nope}}]`, `rules[0].then[0].sensor: no sensor named "nope"`},
		{"same name", `
  - name: r
    model: people
    when: {label: x}
    then: [rtm.record]
  - name: r
    model: people
    when: {label: y}
    then: [rtm.record]`, `rules[1].name: "r" is used twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("c.yaml", []byte(rulesBase+tc.rule))
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a config error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestRulesWarnOfAnAlwaysRecordingLink: a rule that records on a link that
// records on its own would stop that recording; the config says so.
func TestRulesWarnOfAnAlwaysRecordingLink(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte(strings.Replace(rulesBase, "start: manual", "start: auto", 1)+`
  - name: r
    model: people
    when: {label: x}
    then: [rtm.record]`))
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(cfg.Warnings, "\n"); !strings.Contains(w, `rules[0].then[0].link: rtm link "live" records all the time`) {
		t.Errorf("warnings:\n%s", w)
	}
}

// TestRulesNeedOneLinkOfTheKind: without link, an action needs exactly one
// enabled link of its kind.
func TestRulesNeedOneLinkOfTheKind(t *testing.T) {
	two := strings.Replace(rulesBase, "links:\n", `links:
  - name: live2
    kind: rtm
    rtm: {url: "wss://rtm.example/io", token: t, client_id: pi2, video: video, record: {start: manual, upload_url: "https://up.example/r.mkv"}}
`, 1)
	_, err := config.Parse("c.yaml", []byte(two+`
  - name: r
    model: people
    when: {label: x}
    then: [rtm.record]`))
	if err == nil || !strings.Contains(err.Error(), "rules[0].then[0].link: required: there are several rtm links (live2, live)") {
		t.Errorf("err = %v", err)
	}
}
