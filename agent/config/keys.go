package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var reflectTypeOfConfig = reflect.TypeOf(Config{})

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// index maps a line to the field path whose value starts there, so yaml's
// own type errors ("line 7: cannot unmarshal …") can name the field too.
type index struct{ lines map[int]string }

// checkKeys walks the YAML tree alongside the Go type and reports every key
// that no field accepts, with the closest known key as a suggestion. It reports
// all of them, where yaml's KnownFields stops at the first.
func checkKeys(n *yaml.Node, t reflect.Type, path string, idx *index, report func(line int, path, msg string)) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkKeys(c, t, path, idx, report)
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		if _, seen := idx.lines[n.Line]; !seen {
			idx.lines[n.Line] = path
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		fields := yamlFields(t)
		if kt := blockKeys[t]; kt != nil { // a sensor's or link's kind blocks
			for k, bt := range kt.fields {
				fields[k] = bt
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // merge key: check the merged mapping
				checkKeys(v, t, path, idx, report)
				continue
			}
			p := joinPath(path, k.Value)
			idx.lines[k.Line] = p
			ft, ok := fields[k.Value]
			if !ok {
				msg := "unknown key " + strconv.Quote(k.Value)
				if s := suggest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				report(k.Line, p, msg)
				continue
			}
			if reflect.PointerTo(ft).Implements(unmarshalerType) && !selfChecked(ft) {
				continue
			}
			checkKeys(v, ft, p, idx, report)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		et := t.Elem()
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if reflect.PointerTo(et).Implements(unmarshalerType) && !selfChecked(et) {
				idx.lines[c.Line] = p // it checks its own keys (config.Action)
				continue
			}
			checkKeys(c, et, p, idx, report)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value), idx, report)
		}
	}
}

// blockKeys gives the types whose mapping also holds the blocks of a table
// of kinds, each under the kind's name.
var blockKeys = map[reflect.Type]*kindTable{
	reflect.TypeFor[Sensor](): sensorTable,
	reflect.TypeFor[Link]():   linkTable,
}

// selfChecked lists types whose UnmarshalYAML only pre-fills defaults and then
// decodes their own keys and kind blocks, so their keys are checked like a
// plain struct's (plus the blocks, see blockKeys).
func selfChecked(t reflect.Type) bool { return blockKeys[t] != nil }

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// yamlFields maps each accepted key to its field type, following ,inline.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// suggest returns the known key closest to key (edit distance ≤ 2, or equal
// once '_' and '-' are ignored), or "".
func suggest(key string, fields map[string]reflect.Type) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestD := "", 3
	for k := range fields {
		if norm(k) == norm(key) {
			return k
		}
		if d := levenshtein(key, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// lineOfPath finds the line of a field path such as "links[1].rtm.url". When
// the field itself is absent (a missing required key) it returns the line of
// the deepest ancestor that exists, which is where the key belongs.
func lineOfPath(root *yaml.Node, path string) int {
	if root == nil {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, elem := range splitPath(path) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if i, err := strconv.Atoi(elem); err == nil && n.Kind == yaml.SequenceNode {
			if i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			continue
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == elem {
				line = n.Content[i].Line
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}

// splitPath turns "links[1].rtm.urls[0]" into [links 1 rtm urls 0].
func splitPath(path string) []string {
	var out []string
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				out = append(out, part)
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			j := strings.IndexByte(part, ']')
			if j < i {
				out = append(out, part)
				break
			}
			out = append(out, part[i+1:j])
			part = part[j+1:]
		}
	}
	return out
}
