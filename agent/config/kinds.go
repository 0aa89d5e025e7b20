package config

import (
	"reflect"
	"strings"
)

// The kinds are the pointer fields of Sensor and Link whose type implements
// kindConfig, named by their yaml key: adding a kind is adding its field.
// Block, UnmarshalYAML, the kind lists and the "block does not match kind"
// check all read these tables.

// kindField is one kind's block field.
type kindField struct {
	kind  string
	index int
	elem  reflect.Type // the block's struct type
}

var (
	sensorFields = kindFields(reflect.TypeFor[Sensor]())
	linkFields   = kindFields(reflect.TypeFor[Link]())
)

func kindFields(t reflect.Type) []kindField {
	block := reflect.TypeFor[kindConfig]()
	var out []kindField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.Pointer || !f.Type.Implements(block) {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		out = append(out, kindField{kind: name, index: i, elem: f.Type.Elem()})
	}
	return out
}

func kindNames(fields []kindField) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.kind
	}
	return out
}

// blockOf returns the block of kind in the struct v points to (nil when the
// kind is unknown or its block absent).
func blockOf(v reflect.Value, fields []kindField, kind string) kindConfig {
	for _, f := range fields {
		if f.kind == kind {
			if p := v.Elem().Field(f.index); !p.IsNil() {
				return p.Interface().(kindConfig)
			}
		}
	}
	return nil
}

// allocBlocks gives every kind block whose key is in keys a value with its
// defaults, in the struct v points to.
func allocBlocks(v reflect.Value, fields []kindField, keys map[string]bool) {
	for _, f := range fields {
		if keys[f.kind] {
			p := reflect.New(f.elem)
			p.Interface().(kindConfig).SetDefaults()
			v.Elem().Field(f.index).Set(p)
		}
	}
}

// presentKinds lists the kinds whose block is set in the struct v points to.
func presentKinds(v reflect.Value, fields []kindField) []string {
	var out []string
	for _, f := range fields {
		if !v.Elem().Field(f.index).IsNil() {
			out = append(out, f.kind)
		}
	}
	return out
}
