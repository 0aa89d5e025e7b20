package rules_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/rules"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/rtm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// results is a model stream the test scripts: every sample sent on in goes
// to the hub as it is.
type results struct {
	labels []string
	in     chan sensors.Sample
}

func (r *results) Info() sensors.Info {
	return sensors.Info{Name: "people", Kind: "eim", Class: sensors.Inference, Axes: r.labels}
}

func (r *results) Run(ctx context.Context, out chan<- sensors.Sample) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-r.in:
			select {
			case out <- s:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// links records what the rules asked of them.
type links struct {
	mu       sync.Mutex
	calls    []string
	stills   map[string][]byte
	msgs     []camserver.Message
	startErr error
}

func (l *links) add(c string) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
}

func (l *links) StartRecording() error {
	l.add("start")
	return l.startErr
}

func (l *links) StopRecording() error { l.add("stop"); return nil }

func (l *links) UploadStill(name string, jpeg []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, "still")
	if l.stills == nil {
		l.stills = map[string][]byte{}
	}
	l.stills[name] = jpeg
	return nil
}

func (l *links) SendMessage(ctx context.Context, m camserver.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, "msg")
	l.msgs = append(l.msgs, m)
	if m.Msg == "unreachable" {
		return errors.New("camserver message: no session: context deadline exceeded")
	}
	return nil
}

func (l *links) Calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

type rig struct {
	src   *results
	links *links
	eng   *rules.Engine
	logs  *logxtest.Buffer
	t0    time.Time
	sent  uint64
	stop  func() // stops the engine and waits; idempotent
}

func newRig(t *testing.T, rule config.Rule) *rig {
	t.Helper()
	logs := &logxtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	r := &rig{src: &results{labels: []string{"empty", "visitor"}, in: make(chan sensors.Sample)}, links: &links{}, logs: logs,
		t0: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	h := agenttest.Hub(t, log, r.src)
	lookup := func(name string) any {
		if slices.Contains([]string{"live", "fio", "cams"}, name) {
			return r.links
		}
		return nil
	}
	eng := rules.New([]config.Rule{rule}, h, lookup, rules.Options{Logger: log, ActionTimeout: time.Second})
	r.eng = eng
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.Run(ctx)
	}()
	r.stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(r.stop)
	return r
}

// send hands the rule one result: the visitor's score at t0+at.
func (r *rig) send(t *testing.T, at time.Duration, visitor float64) {
	t.Helper()
	s := sensors.Sample{Class: sensors.Inference, Time: r.t0.Add(at), Values: []float64{1 - visitor, visitor},
		Input: []byte(fmt.Sprintf("jpeg@%s", at))}
	select {
	case r.src.in <- s:
	case <-time.After(10 * time.Second):
		t.Fatal("the rule does not read its model's results")
	}
	// One at a time, so that no result is lost to the hub's queue.
	r.sent++
	agenttest.Eventually(t, "the rule read the result", func() bool { return r.status().Results == r.sent })
}

func (r *rig) status() rules.Status { return r.eng.Status()[0] }

func visitorRule(then ...config.Action) config.Rule {
	return config.Rule{Name: "door", Model: "people", MinInterval: conf.Duration(15 * time.Second),
		When: config.When{Label: "visitor", MinScore: 0.8, For: conf.Duration(2 * time.Second)}, Then: then}
}

// TestRuleFiresOncePerEpisode: the label must hold for `for` on the
// results' times; it fires once, however long it then holds; a result
// below the score re-arms it; an episode within min_interval is
// suppressed and counted; the next one after it fires again.
func TestRuleFiresOncePerEpisode(t *testing.T) {
	r := newRig(t, visitorRule(config.Action{Do: config.ActionMessage, Link: "cams", Msg: "detected", Params: map[string]any{"zone": "door"}}))
	fired := func() uint64 { return r.status().Fired }

	r.send(t, 0, 0.9)
	r.send(t, 1*time.Second, 0.95)
	r.send(t, 1500*time.Millisecond, 0.7) // a dip below: the hold starts over
	r.send(t, 2*time.Second, 0.9)
	r.send(t, 3*time.Second, 0.9)
	agenttest.Eventually(t, "holding", func() bool { return r.status().State == rules.StateHolding })
	if n := fired(); n != 0 {
		t.Fatalf("fired %d times before the label held for 2s", n)
	}
	r.send(t, 4*time.Second, 0.85) // 2 s since 2 s
	agenttest.Eventually(t, "fired", func() bool { return fired() == 1 })
	for i := range 5 {
		r.send(t, 5*time.Second+time.Duration(i)*time.Second, 0.99)
	}
	r.send(t, 11*time.Second, 0.1) // the episode ends: armed again
	agenttest.Eventually(t, "armed", func() bool { return r.status().State == rules.StateArmed })
	if n := fired(); n != 1 {
		t.Fatalf("fired %d times in one episode", n)
	}

	// A new episode that fires 10 s after the firing: within min_interval (15 s).
	r.send(t, 12*time.Second, 0.9)
	r.send(t, 14*time.Second, 0.9)
	r.send(t, 15*time.Second, 0.2)
	agenttest.Eventually(t, "suppressed", func() bool { return r.status().Suppressed == 1 })

	// And one after it.
	r.send(t, 20*time.Second, 0.9)
	r.send(t, 22*time.Second, 0.9)
	agenttest.Eventually(t, "fired again", func() bool { return fired() == 2 })

	st := r.status()
	if st.LastFired != r.t0.Add(22*time.Second) || st.Actions[0].OK != 2 || st.Actions[0].Failed != 0 {
		t.Errorf("status = %+v", st)
	}
	r.links.mu.Lock()
	msgs := slices.Clone(r.links.msgs)
	r.links.mu.Unlock()
	if len(msgs) != 2 {
		t.Fatalf("%d messages sent, want 2", len(msgs))
	}
	var params map[string]any
	if err := json.Unmarshal(msgs[0].Params, &params); err != nil {
		t.Fatal(err)
	}
	if msgs[0].Msg != "detected" || params["zone"] != "door" || params["label"] != "visitor" || params["rule"] != "door" ||
		params["model"] != "people" || params["score"] != 0.85 {
		t.Errorf("message = %s %s", msgs[0].Msg, msgs[0].Params)
	}
	for _, want := range []string{"rule fired", "rule suppressed"} {
		if !strings.Contains(r.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, r.logs.String())
		}
	}
}

// TestRuleRecordsAndUploadsTheFrame: rtm.record starts a recording and
// stops it after `for` (a firing meanwhile extends it); upload_still hands
// Frame.io the frame the model classified; a failed action is counted with
// its reason and does not stop the others.
func TestRuleRecordsAndUploadsTheFrame(t *testing.T) {
	rule := visitorRule(
		config.Action{Do: config.ActionRecord, Link: "live", For: conf.Duration(300 * time.Millisecond)},
		config.Action{Do: config.ActionMessage, Link: "cams", Msg: "unreachable"},
		config.Action{Do: config.ActionUploadStill, Link: "fio"},
	)
	rule.When.For = 0
	rule.MinInterval = conf.Duration(time.Second)
	r := newRig(t, rule)
	r.send(t, 0, 0.9)
	agenttest.Eventually(t, "recording stopped after its time", func() bool {
		return slices.Equal(r.links.Calls(), []string{"start", "msg", "still", "stop"})
	})
	st := r.status()
	if a := st.Actions[1]; a.Failed != 1 || !strings.Contains(a.LastError, "no session") {
		t.Errorf("the failed action's status = %+v", a)
	}
	if a, b := st.Actions[0], st.Actions[2]; a.OK != 1 || b.OK != 1 {
		t.Errorf("actions = %+v", st.Actions)
	}
	r.links.mu.Lock()
	defer r.links.mu.Unlock()
	if got := r.links.stills["door_visitor_20261206_100000.000.jpg"]; string(got) != "jpeg@0s" {
		t.Errorf("stills = %q, want the classified frame under the rule's name", r.links.stills)
	}
}

// TestRuleRecordingWithoutSession: a link without a session keeps the
// wish (rtm.ErrNoSession), which counts as done; shutting the rules down
// stops the recording a rule started.
func TestRuleRecordingWithoutSession(t *testing.T) {
	rule := visitorRule(config.Action{Do: config.ActionRecord, Link: "live", For: conf.Duration(time.Hour)})
	rule.When.For = 0
	r := newRig(t, rule)
	r.links.startErr = rtm.ErrNoSession
	r.send(t, 0, 0.9)
	agenttest.Eventually(t, "started", func() bool { return r.status().Actions[0].OK == 1 })
	if calls := r.links.Calls(); !slices.Equal(calls, []string{"start"}) {
		t.Fatalf("calls = %v", calls)
	}
	r.stop()
	if calls := r.links.Calls(); !slices.Equal(calls, []string{"start", "stop"}) {
		t.Errorf("calls after shutdown = %v, want the recording stopped", calls)
	}
}

// TestRuleWithoutTheLabel: a model that has no such label is reported in
// the status and logged once; the rule never fires.
func TestRuleWithoutTheLabel(t *testing.T) {
	rule := visitorRule(config.Action{Do: config.ActionRecord, Link: "live"})
	rule.When.Label = "person"
	r := newRig(t, rule)
	r.send(t, 0, 0.9)
	r.send(t, time.Second, 0.9)
	agenttest.Eventually(t, "no label", func() bool { return r.status().State == rules.StateNoLabel })
	st := r.status()
	if !strings.Contains(st.LastError, `has no label "person" (labels: [empty visitor])`) || st.Fired != 0 {
		t.Errorf("status = %+v", st)
	}
	if n := strings.Count(r.logs.String(), "rule cannot fire"); n != 1 {
		t.Errorf("logged %d times", n)
	}
}

// TestRuleFailsOnALinkThatCannot: an action on a link that lacks the
// method fails its rule with the reason when the rules are built; a link
// that is not running only fails the firings, counted with the reason;
// the other rules run.
func TestRuleFailsOnALinkThatCannot(t *testing.T) {
	src := &results{labels: []string{"visitor"}, in: make(chan sensors.Sample)}
	h := agenttest.Hub(t, nil, src)
	ok := &links{}
	lookup := map[string]any{"live": struct{}{}, "cams": ok}
	bad, gone, good := visitorRule(config.Action{Do: config.ActionRecord, Link: "live"}),
		visitorRule(config.Action{Do: config.ActionRecord, Link: "old"}),
		visitorRule(config.Action{Do: config.ActionMessage, Link: "cams", Msg: "m"})
	bad.Name, gone.Name, good.Name = "bad", "gone", "good"
	gone.When.For, good.When.For = 0, 0
	eng := rules.New([]config.Rule{bad, gone, good}, h, func(n string) any { return lookup[n] }, rules.Options{})
	st := eng.Status()
	if want := `rtm.record: link "live" (struct {}) cannot do it`; st[0].State != rules.StateFailed || !strings.Contains(st[0].LastError, want) {
		t.Errorf("rule bad: %s %q, want failed with %q", st[0].State, st[0].LastError, want)
	}
	if st[1].State == rules.StateFailed || st[2].State == rules.StateFailed {
		t.Errorf("rules gone and good failed: %+v", st[1:])
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	// Results until both rules have read one (they subscribe in their
	// own time); one episode, so each fires once.
	agenttest.Eventually(t, "both rules fired", func() bool {
		select {
		case src.in <- sensors.Sample{Class: sensors.Inference, Time: time.Now(), Values: []float64{0.9}}:
		case <-time.After(10 * time.Millisecond):
		}
		st := eng.Status()
		return st[1].Fired == 1 && st[2].Fired == 1
	})
	agenttest.Eventually(t, "the outcomes counted", func() bool {
		st := eng.Status()
		return st[1].Actions[0].Failed == 1 && st[2].Actions[0].OK == 1
	})
	if a := eng.Status()[1].Actions[0]; !strings.Contains(a.LastError, `rtm.record: link "old" is not running`) {
		t.Errorf("the action on a link that is not running: %+v", a)
	}
}

// TestRecordingHeldAcrossRules: two rules record on the same link; the one
// whose time is up first leaves the recording running for the other, which
// stops it when its own time is up (here: at shutdown).
func TestRecordingHeldAcrossRules(t *testing.T) {
	logs := &logxtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	src := &results{labels: []string{"empty", "visitor"}, in: make(chan sensors.Sample)}
	h := agenttest.Hub(t, log, src)
	live := &links{}
	short := visitorRule(config.Action{Do: config.ActionRecord, Link: "live", For: conf.Duration(time.Second)})
	long := visitorRule(config.Action{Do: config.ActionRecord, Link: "live", For: conf.Duration(time.Hour)})
	short.Name, long.Name = "short", "long"
	short.When.For, long.When.For = 0, 0
	eng := rules.New([]config.Rule{short, long}, h, func(string) any { return live }, rules.Options{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	defer stop()
	// One result, once both rules read the stream: both fire on it, so
	// the long rule holds the recording before the short one's second is up.
	agenttest.Eventually(t, "both rules subscribed", func() bool {
		for _, f := range h.Stats() {
			if f.Name == "people" {
				return f.Subscribers == 2
			}
		}
		return false
	})
	select {
	case src.in <- sensors.Sample{Class: sensors.Inference, Time: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), Values: []float64{0.1, 0.9}}:
	case <-time.After(10 * time.Second):
		t.Fatal("the rules do not read their model's results")
	}
	agenttest.Eventually(t, "both rules fired", func() bool {
		st := eng.Status()
		return st[0].Fired == 1 && st[1].Fired == 1
	})
	agenttest.Eventually(t, "the short rule's time to be up", func() bool {
		return strings.Contains(logs.String(), "recording time is up")
	})
	if calls := live.Calls(); !slices.Equal(calls, []string{"start", "start"}) {
		t.Errorf("calls when the short rule's time was up = %v: it stopped the long rule's recording", calls)
	}
	stop()
	if calls := live.Calls(); !slices.Equal(calls, []string{"start", "start", "stop"}) {
		t.Errorf("calls after shutdown = %v, want the recording stopped once", calls)
	}
}
