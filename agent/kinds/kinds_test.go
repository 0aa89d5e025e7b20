package kinds_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/kinds"
	"github.com/edge-agent/edge-agent/agent/sim"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/upload/spool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var kindName = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// TestKindsComplete: every row of both tables has a usable name, a docs
// line, a block type of its own, a constructor and, for links, a fake. A row
// missing any of them fails here rather than at run time.
func TestKindsComplete(t *testing.T) {
	blockTypes := map[reflect.Type]string{}
	check := func(table string, k kinds.Kind, seen map[string]bool) {
		t.Helper()
		if !kindName.MatchString(k.Name) {
			t.Errorf("%s kind %q: the name is a YAML key and a `kind:` value: use lower-case letters and digits", table, k.Name)
		}
		if seen[k.Name] {
			t.Errorf("%s kind %q is listed twice", table, k.Name)
		}
		seen[k.Name] = true
		if k.Doc == "" || strings.Contains(k.Doc, "\n") || !strings.HasSuffix(k.Doc, ".") {
			t.Errorf("%s kind %q: Doc %q: want one sentence on one line (docs/CONFIG.md shows it)", table, k.Name, k.Doc)
		}
		if k.NewBlock == nil {
			t.Errorf("%s kind %q has no NewBlock", table, k.Name)
			return
		}
		b := k.NewBlock()
		bt := reflect.TypeOf(b)
		if b == nil || bt.Kind() != reflect.Pointer || bt.Elem().Kind() != reflect.Struct || reflect.ValueOf(b).IsNil() {
			t.Errorf("%s kind %q: NewBlock returned %T, want a pointer to the package's Config", table, k.Name, b)
			return
		}
		if other, dup := blockTypes[bt]; dup {
			t.Errorf("%s kind %q shares its block type %v with kind %q", table, k.Name, bt, other)
		}
		blockTypes[bt] = k.Name
		if b == k.NewBlock() {
			t.Errorf("%s kind %q: NewBlock returns the same block twice; every instance needs its own", table, k.Name)
		}
	}
	seen := map[string]bool{}
	for _, s := range kinds.Sensors {
		check("sensor", s.Kind, seen)
		if s.New == nil {
			t.Errorf("sensor kind %q has no constructor", s.Name)
		}
	}
	seen = map[string]bool{}
	for _, l := range kinds.Links {
		check("link", l.Kind, seen)
		if l.New == nil {
			t.Errorf("link kind %q has no constructor", l.Name)
		}
		if l.NewSim == nil {
			t.Errorf("link kind %q has no fake for edge-agent sim (NewSim)", l.Name)
		}
	}
}

// TestKindsOfTheContract: kind names are user-facing (docs/DESIGN.md, the
// user-facing contract): a renamed or dropped kind breaks users' files.
func TestKindsOfTheContract(t *testing.T) {
	for _, name := range []string{"iio", "serial", "microphone", "v4l2", "command", "synthetic"} {
		if _, ok := kinds.Find(kinds.Sensors, name); !ok {
			t.Errorf("sensor kind %q is gone (have %v)", name, kinds.Names(kinds.Sensors))
		}
	}
	for _, name := range []string{"edgeimpulse", "rtm", "frameio", "camserver"} {
		if _, ok := kinds.Find(kinds.Links, name); !ok {
			t.Errorf("link kind %q is gone (have %v)", name, kinds.Names(kinds.Links))
		}
	}
}

// TestKindsFakesServeTheirKind starts each link kind's fake and builds the
// link from the block its DemoLink gives, as `edge-agent demo` does: the
// fake must fake this kind, and its block must be this kind's block, valid
// once defaulted.
func TestKindsFakesServeTheirKind(t *testing.T) {
	for _, k := range kinds.Links {
		t.Run(k.Name, func(t *testing.T) {
			if k.NewSim == nil || k.New == nil || k.NewBlock == nil {
				t.Fatal("the row is incomplete (see TestKindsComplete)")
			}
			svc, err := k.NewSim("127.0.0.1:0", nil)
			if err != nil {
				t.Fatalf("NewSim: %v", err)
			}
			t.Cleanup(func() { _ = svc.Close() })
			if svc.Kind() != k.Name {
				t.Errorf("the fake of kind %q says it is %q", k.Name, svc.Kind())
			}
			got, err := svc.DemoLink(t.TempDir())
			if err != nil {
				t.Fatalf("DemoLink: %v", err)
			}
			b, ok := got.(kinds.Block)
			if want := reflect.TypeOf(k.NewBlock()); !ok || reflect.TypeOf(got) != want {
				t.Fatalf("DemoLink returned a %T, want %v", got, want)
			}
			b.SetDefaults()
			v := conf.NewValidator()
			b.Validate(v)
			if p := v.Problems(); len(p) > 0 {
				t.Fatalf("the demo block does not validate: %v", p)
			}
			deps := agenttest.Deps(t, k.Name, demoHub(t), nil)
			deps.Spool = agenttest.Spool(t, spool.Options{})
			if _, err := k.New(b, deps); err != nil {
				t.Errorf("New with the demo block: %v", err)
			}
		})
	}
}

// demoHub holds the demo's sensors, which the fakes' blocks name.
func demoHub(t *testing.T) sensors.Hub {
	var srcs []sensors.Source
	for _, s := range sim.DemoSensors() {
		k, _ := kinds.Find(kinds.Sensors, s.Kind)
		src, err := k.New(s.Name, s.Block, sensors.Env{})
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	return agenttest.Hub(t, nil, srcs...)
}

// TestKindsRejectAnotherKindsBlock: a block of the wrong kind is an error
// naming both types, not a panic.
func TestKindsRejectAnotherKindsBlock(t *testing.T) {
	syn, _ := kinds.Find(kinds.Sensors, "synthetic")
	r, _ := kinds.Find(kinds.Links, "rtm")
	if _, err := syn.New("x", &rtm.Config{}, sensors.Env{}); err == nil || !strings.Contains(err.Error(), "*rtm.Config") {
		t.Errorf("synthetic with an rtm block: err = %v", err)
	}
	if l, err := r.New(nil, agenttest.Deps(t, "r", nil, nil)); err == nil || l != nil {
		t.Errorf("rtm without a block: %v, %v", l, err)
	}
	if _, ok := syn.NewBlock().(*synthetic.Config); !ok {
		t.Errorf("synthetic's block is %T", syn.NewBlock())
	}
	if src, err := syn.New("x", syn.NewBlock(), sensors.Env{}); err != nil || src.Info().Name != "x" {
		t.Errorf("synthetic with its defaults: %v, %v", src, err)
	}
}

// TestKindsHaveDocs: docs/CONFIG.md has each kind's section with its line
// (regenerate with go run ./scripts/configdoc > docs/CONFIG.md).
func TestKindsHaveDocs(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(kinds.Kinds(kinds.Sensors), kinds.Kinds(kinds.Links)...) {
		if !bytes.Contains(doc, []byte("### `kind: "+k.Name+"`\n\n"+k.Doc+"\n")) {
			t.Errorf("docs/CONFIG.md has no section for kind %q with its Doc line: run go run ./scripts/configdoc > docs/CONFIG.md", k.Name)
		}
	}
}
