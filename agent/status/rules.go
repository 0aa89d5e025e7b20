package status

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RuleStatus is one rule (`rules[]`, agent/rules): what it watches, where
// its episode stands, and what its actions did.
type RuleStatus struct {
	Name               string  `json:"name"`
	Model              string  `json:"model"`
	Label              string  `json:"label"`
	MinScore           float64 `json:"min_score"`
	ForSeconds         float64 `json:"for_seconds"`
	MinIntervalSeconds float64 `json:"min_interval_seconds"`
	// State is waiting (no result yet), armed, holding (the label is above
	// min_score, not yet for long enough), fired (this episode fired or was
	// suppressed), no-label (the model has no such label) or failed (an
	// action's link cannot carry it out; the rule does not run).
	State string `json:"state"`
	// Results the rule read; Fired episodes that ran the actions;
	// Suppressed episodes within min_interval of the last firing.
	Results    uint64         `json:"results"`
	Fired      uint64         `json:"fired"`
	Suppressed uint64         `json:"suppressed"`
	LastFired  time.Time      `json:"last_fired,omitzero"`
	LastScore  float64        `json:"last_score"`
	LastError  string         `json:"last_error,omitempty"`
	Actions    []ActionStatus `json:"actions"`
}

// ActionStatus is one action of a rule: how often it worked and failed.
type ActionStatus struct {
	Do        string    `json:"do"`
	Link      string    `json:"link"`
	OK        uint64    `json:"ok"`
	Failed    uint64    `json:"failed"`
	LastAt    time.Time `json:"last_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

var (
	descRuleFired      = prometheus.NewDesc("edge_agent_rule_fired_total", "Episodes in which the rule ran its actions.", []string{"rule", "model", "label"}, nil)
	descRuleSuppressed = prometheus.NewDesc("edge_agent_rule_suppressed_total", "Episodes suppressed because the rule fired less than min_interval before.", []string{"rule"}, nil)
	descRuleAction     = prometheus.NewDesc("edge_agent_rule_actions_total", "Actions a rule ran, by outcome (ok, failed).", []string{"rule", "action", "link", "outcome"}, nil)
)

var ruleDescs = []*prometheus.Desc{descRuleFired, descRuleSuppressed, descRuleAction}

// collectRules exports the rules of s.
func collectRules(ch chan<- prometheus.Metric, s Snapshot) {
	for _, r := range s.Rules {
		ch <- prometheus.MustNewConstMetric(descRuleFired, prometheus.CounterValue, float64(r.Fired), r.Name, r.Model, r.Label)
		ch <- prometheus.MustNewConstMetric(descRuleSuppressed, prometheus.CounterValue, float64(r.Suppressed), r.Name)
		for _, a := range r.Actions {
			ch <- prometheus.MustNewConstMetric(descRuleAction, prometheus.CounterValue, float64(a.OK), r.Name, a.Do, a.Link, "ok")
			ch <- prometheus.MustNewConstMetric(descRuleAction, prometheus.CounterValue, float64(a.Failed), r.Name, a.Do, a.Link, "failed")
		}
	}
}
