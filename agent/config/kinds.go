package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/agent/kinds"
	"github.com/edge-agent/edge-agent/internal/conf"
)

// The kinds, their block types and defaults come from the table in
// agent/kinds: a Sensor or Link keeps its kind's block in one Block field,
// which UnmarshalYAML and MarshalYAML read from and write to the key named
// like the kind. checkKeys, validate's "block does not match kind" check and
// the TLS warning all find the blocks through kindTable, so adding a kind is
// adding its row there (docs/DESIGN.md, "Adding a link").

// kindTable is one table of kinds as the loader uses it.
type kindTable struct {
	kinds []kinds.Kind
	names []string
	// fields maps each kind's block key to its block type (a pointer), for
	// checkKeys and the block type check.
	fields map[string]reflect.Type
}

var (
	sensorTable = newKindTable(kinds.Kinds(kinds.Sensors))
	linkTable   = newKindTable(kinds.Kinds(kinds.Links))
)

func newKindTable(ks []kinds.Kind) *kindTable {
	t := &kindTable{kinds: ks, fields: map[string]reflect.Type{}}
	for _, k := range ks {
		t.names = append(t.names, k.Name)
		t.fields[k.Name] = reflect.TypeOf(k.NewBlock())
	}
	return t
}

// namedBlock is a block with the key it was found under.
type namedBlock struct {
	kind  string
	block kinds.Block
}

// UnmarshalYAML decodes the sensor's own keys, then every kind block present
// in the node, each over a fresh block with the kind's defaults, so an
// explicit value always wins and an absent one takes the kind's default.
func (s *Sensor) UnmarshalYAML(n *yaml.Node) error {
	type plain Sensor
	p := plain{}
	if err := keepElement(n.Decode(&p), &p.decodeErrs); err != nil {
		return err
	}
	*s = Sensor(p)
	var err error
	s.Block, s.others, err = decodeBlocks(n, sensorTable, s.Kind, &s.decodeErrs)
	return err
}

// UnmarshalYAML: see Sensor.UnmarshalYAML.
func (l *Link) UnmarshalYAML(n *yaml.Node) error {
	type plain Link
	p := plain{}
	if err := keepElement(n.Decode(&p), &p.decodeErrs); err != nil {
		return err
	}
	*l = Link(p)
	var err error
	l.Block, l.others, err = decodeBlocks(n, linkTable, l.Kind, &l.decodeErrs)
	return err
}

// MarshalYAML writes the sensor's keys and its Block under the kind's key.
func (s Sensor) MarshalYAML() (any, error) {
	type plain Sensor
	return withBlock(plain(s), s.Kind, s.Block)
}

// MarshalYAML writes the link's keys and its Block under the kind's key.
func (l Link) MarshalYAML() (any, error) {
	type plain Link
	return withBlock(plain(l), l.Kind, l.Block)
}

func withBlock(plain any, kind string, b kinds.Block) (*yaml.Node, error) {
	var n yaml.Node
	if err := n.Encode(plain); err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	if b != nil {
		var bn yaml.Node
		if err := bn.Encode(b); err != nil {
			return nil, fmt.Errorf("encode %s block: %w", kind, err)
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: kind}, &bn)
	}
	return &n, nil
}

// decodeBlocks decodes each block of t present in the mapping n (a null
// value counts as absent, as a nil pointer did), in table order. It returns
// the block of kind and the blocks of other kinds; type errors go to errs.
func decodeBlocks(n *yaml.Node, t *kindTable, kind string, errs *[]string) (kinds.Block, []namedBlock, error) {
	values := mappingValues(n)
	var own kinds.Block
	var others []namedBlock
	for _, k := range t.kinds {
		v, ok := values[k.Name]
		if !ok || isNull(v) {
			continue
		}
		b := k.NewBlock()
		if err := keepElement(v.Decode(b), errs); err != nil {
			return nil, nil, err
		}
		if k.Name == kind {
			own = b
		} else {
			others = append(others, namedBlock{k.Name, b})
		}
	}
	return own, others, nil
}

// mappingValues maps each key of the mapping n to its value, following
// merge keys (<<) the way YAML merges: the mapping's own keys win over
// merged ones, and earlier merged mappings over later ones.
func mappingValues(n *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	seen := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if n.Kind != yaml.MappingNode || seen[n] {
			return
		}
		seen[n] = true
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := n.Content[i], n.Content[i+1]; k.Value == "<<" {
				if v.Kind == yaml.SequenceNode {
					for j := len(v.Content) - 1; j >= 0; j-- {
						walk(v.Content[j])
					}
				} else {
					walk(v)
				}
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value != "<<" {
				out[k.Value] = n.Content[i+1]
			}
		}
	}
	walk(n)
	return out
}

func isNull(n *yaml.Node) bool {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// keepElement stores per-field type errors in errs and returns nil, because
// yaml.v3 drops a sequence element whose unmarshaler fails, which would shift
// the index of every later sensor or link in the messages. Other errors are
// returned as they are.
func keepElement(err error, errs *[]string) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		*errs = append(*errs, te.Errors...)
		return nil
	}
	return err
}

// checkBlock checks an instance's kind and block: the kind is one of t, its
// block is there and of the kind's type (a config built in code could hold
// another), the block validates through bv, and no other kind's block is
// present. It reports whether the block may be read further.
func checkBlock(v *conf.Validator, t *kindTable, kind string, b kinds.Block, others []namedBlock, bv *conf.Validator) bool {
	if kind == "" {
		v.Errorf("kind", "required (one of %s)", strings.Join(t.names, "|"))
		return false
	}
	want, ok := t.fields[kind]
	switch {
	case !ok:
		v.Errorf("kind", "%q is not one of %s", kind, strings.Join(t.names, "|"))
		return false
	case b == nil:
		v.Errorf(kind, "required for kind %s", kind)
		return false
	case reflect.TypeOf(b) != want:
		v.Errorf(kind, "config block is %T, want %v", b, want)
		return false
	}
	b.Validate(bv)
	for _, o := range others {
		v.Errorf(o.kind, "block does not match kind %q", kind)
	}
	return true
}

// blocks returns every block the sensor holds, its own and others found
// beside it, in table order, with the key of each.
func (s Sensor) blocks() []namedBlock { return sensorTable.inOrder(s.Kind, s.Block, s.others) }

// blocks: see Sensor.blocks.
func (l Link) blocks() []namedBlock { return linkTable.inOrder(l.Kind, l.Block, l.others) }

func (t *kindTable) inOrder(kind string, own kinds.Block, others []namedBlock) []namedBlock {
	var out []namedBlock
	for _, k := range t.kinds {
		if k.Name == kind && own != nil {
			out = append(out, namedBlock{kind, own})
		}
		for _, o := range others {
			if o.kind == k.Name {
				out = append(out, o)
			}
		}
	}
	return out
}
