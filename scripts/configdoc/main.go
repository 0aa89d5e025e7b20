// Command configdoc writes docs/CONFIG.md from the config structs: every key
// with its type, default and the field's doc comment, so the reference cannot
// drift from the code (its test fails when the file is stale).
//
//	go run ./scripts/configdoc > docs/CONFIG.md
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/kinds"
	"github.com/edge-agent/edge-agent/internal/conf"
)

func main() {
	if err := write(os.Stdout, repoRoot()); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// modulePath prefixes the import path of every kind's package; the rest is
// its directory in the repository.
const modulePath = "github.com/edge-agent/edge-agent/"

func write(w io.Writer, root string) error {
	fmt.Fprint(w, `# Configuration reference

Generated from the code by `+"`go run ./scripts/configdoc > docs/CONFIG.md`"+`; do not edit by hand.
Key names and kind names are part of the user-facing contract ([DESIGN.md](DESIGN.md#the-user-facing-contract):
new keys may be added, existing ones are not renamed or dropped); a complete example is
[deploy/config.example.yaml](../deploy/config.example.yaml).

The file is YAML with snake_case keys. Unknown keys are errors (reported with file, line and a
suggestion). Durations are strings such as `+"`400ms`, `10s`, `5m`"+`; sizes are strings such as
`+"`512KiB`, `64MiB`, `1GB`"+`. A secret is given by a `+"`*_file`"+` key naming a file readable only by the
agent (a group/world readable file gets a warning); the inline key works but is discouraged.
Sensors and links are lists of named instances, each with `+"`kind`"+` and a block named like the kind.
A link with `+"`disabled: true`"+` is validated but not started, and its secret files are not read.

`)
	top, err := docFields(root, "agent/config", "Config")
	if err != nil {
		return err
	}
	def := config.Default()
	fmt.Fprintln(w, "## Top level")
	fmt.Fprintln(w)
	table(w, top, reflect.ValueOf(def), "", map[string]bool{"sensors": true, "links": true})
	fmt.Fprintln(w, "\n## Sensors: `sensors[]`")
	fmt.Fprintln(w, "\nEvery sensor has `name` (unique; letters, digits, `.`, `_`, `-`) and `kind`, plus the block of its kind.")
	for _, k := range kinds.Kinds(kinds.Sensors) {
		if err := kindSection(w, root, k); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\n## Links: `links[]`")
	fmt.Fprintln(w, "\nEvery link has `name`, `kind`, optional `disabled` and an optional `backoff` block (same keys as the top-level one) overriding the reconnect policy, plus the block of its kind.")
	for _, k := range kinds.Kinds(kinds.Links) {
		if err := kindSection(w, root, k); err != nil {
			return err
		}
	}
	return nil
}

// kindSection documents one kind: its line from the table, then the keys of
// its block, read from the block type's package source (for the comments)
// and from a defaulted block (for the defaults).
func kindSection(w io.Writer, root string, k kinds.Kind) error {
	block := reflect.ValueOf(k.NewBlock()).Elem()
	dir, ok := strings.CutPrefix(block.Type().PkgPath(), modulePath)
	if !ok {
		return fmt.Errorf("kind %s: block %v is outside the module", k.Name, block.Type())
	}
	fields, err := docFields(root, dir, block.Type().Name())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n### `kind: %s`\n\n%s\n\n", k.Name, k.Doc)
	table(w, fields, block, k.Name+".", nil)
	return nil
}

// field is one documented key.
type field struct {
	key, goType, doc string
	goName           string
	sub              []field // nested struct keys
}

// docFields parses the package in dir and returns the fields of typeName
// with their yaml keys and doc comments, expanding struct types of the same
// package.
func docFields(root, dir, typeName string) ([]field, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, filepath.Join(root, dir), func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	types := map[string]*ast.StructType{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				if ts, ok := n.(*ast.TypeSpec); ok {
					if st, ok := ts.Type.(*ast.StructType); ok {
						types[ts.Name.Name] = st
					}
				}
				return true
			})
		}
	}
	var build func(name string, depth int) ([]field, error)
	build = func(name string, depth int) ([]field, error) {
		st, ok := types[name]
		if !ok {
			return nil, fmt.Errorf("%s: no struct %s", dir, name)
		}
		var out []field
		for _, f := range st.Fields.List {
			if f.Tag == nil || len(f.Names) == 0 {
				continue
			}
			tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("yaml")
			key, _, _ := strings.Cut(tag, ",")
			if key == "" || key == "-" {
				continue
			}
			doc := strings.TrimSpace(f.Doc.Text() + " " + f.Comment.Text())
			fd := field{key: key, goName: f.Names[0].Name, goType: typeString(f.Type), doc: strings.Join(strings.Fields(doc), " ")}
			inner := strings.TrimPrefix(strings.TrimPrefix(fd.goType, "[]"), "*")
			if _, local := types[inner]; local && depth < 3 && dir != "agent/config" || (dir == "agent/config" && inner != "Sensor" && inner != "Link" && types[inner] != nil) {
				if fd.sub, err = build(inner, depth+1); err != nil {
					return nil, err
				}
			}
			out = append(out, fd)
		}
		return out, nil
	}
	return build(typeName, 0)
}

func typeString(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.StarExpr:
		return "*" + typeString(t.X)
	case *ast.ArrayType:
		return "[]" + typeString(t.Elt)
	case *ast.SelectorExpr:
		return typeString(t.X) + "." + t.Sel.Name
	case *ast.MapType:
		return "map[" + typeString(t.Key) + "]" + typeString(t.Value)
	}
	return "?"
}

func table(w io.Writer, fields []field, def reflect.Value, prefix string, skip map[string]bool) {
	fmt.Fprintln(w, "| key | type | default | description |")
	fmt.Fprintln(w, "|---|---|---|---|")
	var rows func(fs []field, v reflect.Value, p string)
	rows = func(fs []field, v reflect.Value, p string) {
		for _, f := range fs {
			if skip[f.key] {
				continue
			}
			var fv reflect.Value
			if v.IsValid() && v.Kind() == reflect.Struct {
				fv = v.FieldByName(f.goName)
			}
			if len(f.sub) > 0 && !strings.HasPrefix(f.goType, "[]") {
				for fv.IsValid() && fv.Kind() == reflect.Pointer {
					fv = fv.Elem()
				}
				rows(f.sub, fv, p+f.key+".")
				continue
			}
			key := p + f.key
			if len(f.sub) > 0 { // a list of structs: document its element's keys
				fmt.Fprintf(w, "| `%s` | list | %s | %s |\n", key, "", escape(f.doc))
				rows(f.sub, reflect.Value{}, key+"[].")
				continue
			}
			fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", key, kindOf(f.goType), defaultOf(fv), escape(f.doc))
		}
	}
	rows(fields, def, prefix)
}

func kindOf(goType string) string {
	switch goType {
	case "conf.Duration":
		return "duration"
	case "conf.Size":
		return "size"
	case "string":
		return "string"
	case "bool":
		return "bool"
	case "int", "int64", "uint64":
		return "integer"
	case "float64":
		return "number"
	case "[]string":
		return "list of strings"
	case "[]float64":
		return "list of numbers"
	}
	return strings.TrimPrefix(goType, "*")
}

func defaultOf(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	switch x := v.Interface().(type) {
	case conf.Duration:
		if x == 0 {
			return ""
		}
		return "`" + x.String() + "`"
	case conf.Size:
		if x == 0 {
			return ""
		}
		return "`" + x.String() + "`"
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return ""
		}
		return "`" + v.String() + "`"
	case reflect.Bool:
		if !v.Bool() {
			return ""
		}
		return "`true`"
	case reflect.Slice:
		if v.Len() == 0 {
			return ""
		}
		var parts []string
		for i := 0; i < v.Len(); i++ {
			parts = append(parts, fmt.Sprint(v.Index(i).Interface()))
		}
		return "`[" + strings.Join(parts, ", ") + "]`"
	case reflect.Int, reflect.Int64, reflect.Float64, reflect.Uint64:
		if v.IsZero() {
			return ""
		}
		return "`" + fmt.Sprint(v.Interface()) + "`"
	}
	return ""
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
