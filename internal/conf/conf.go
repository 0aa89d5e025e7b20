// Package conf holds the small value types and the validation helper shared by
// every configurable part of the agent: durations and sizes written as strings,
// secrets read from files, and a Validator that collects every problem with the
// field path it belongs to. The agent's config loader maps those paths back to
// file:line, so a driver's Validate never deals with YAML positions itself.
package conf

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("400ms", "5m").
// A bare 0 is accepted as zero.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration without trailing zero units ("2m", not
// "2m0s"), so generated configs and docs read as a person would write them.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fieldError(n, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ParseDuration is time.ParseDuration that also accepts "0" and rejects
// negative values.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 400ms, 10s, 5m)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return v, nil
}

// Size is a byte count written as a string with an optional unit
// ("512", "64KiB", "10MB", "1GiB").
type Size int64

// UnmarshalYAML parses a size string.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	var str string
	if err := n.Decode(&str); err != nil {
		return err
	}
	v, err := ParseSize(str)
	if err != nil {
		return fieldError(n, err)
	}
	*s = Size(v)
	return nil
}

// MarshalYAML writes the size with the largest binary unit that divides it.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// String formats the size as "256MiB", "1500B"…
func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

var sizeUnits = []struct {
	suffix string
	mult   float64
}{ // longest suffixes first so "MiB" is not read as "B"
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize parses a size such as "64MiB" into bytes.
func ParseSize(s string) (int64, error) {
	str := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(str, u.suffix) {
			str, mult = strings.TrimSpace(strings.TrimSuffix(str, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("invalid size %q (use e.g. 512KiB, 64MiB, 1GB)", s)
	}
	v := f * mult
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(v), nil
}

// fieldError reports a bad scalar as a yaml.TypeError, which the decoder
// collects and keeps going, so one run reports every bad value.
func fieldError(n *yaml.Node, err error) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
}

// Problem is one thing wrong with a config, at a field path such as
// "links[1].rtm.url".
type Problem struct {
	Path string
	Msg  string
}

// Validator collects problems and warnings under a path prefix. Sub-validators
// made with At share the same lists. It is not safe for concurrent use.
type Validator struct {
	prefix string
	list   *lists
	// ReadFile reads secret files; tests may replace it. Nil means os.ReadFile.
	readFile func(string) ([]byte, error)
	stat     func(string) (os.FileInfo, error)
	// noSecrets checks secret keys for shape only (set for disabled links,
	// whose key files need not exist yet).
	noSecrets bool
}

type lists struct {
	problems []Problem
	warnings []Problem
	secrets  []string
	inline   []string // paths of secrets given inline
}

// NewValidator returns an empty validator rooted at the top of the config.
func NewValidator() *Validator {
	return &Validator{list: &lists{}, readFile: os.ReadFile, stat: os.Stat}
}

// At returns a validator for a child path: v.At("links[1]").At("rtm").
func (v *Validator) At(elem string) *Validator {
	c := *v
	c.prefix = join(v.prefix, elem)
	return &c
}

// WithoutSecrets returns a validator that checks secret keys for shape only
// and does not read secret files. Used for disabled links, so a shipped config
// with links still to be set up validates on a fresh board.
func (v *Validator) WithoutSecrets() *Validator {
	c := *v
	c.noSecrets = true
	return &c
}

// Path returns the full path of field under this validator.
func (v *Validator) Path(field string) string { return join(v.prefix, field) }

func join(prefix, elem string) string {
	switch {
	case prefix == "":
		return elem
	case elem == "":
		return prefix
	case strings.HasPrefix(elem, "["):
		return prefix + elem
	}
	return prefix + "." + elem
}

// Errorf records a problem with field (relative to this validator).
func (v *Validator) Errorf(field, format string, args ...any) {
	v.list.problems = append(v.list.problems, Problem{Path: v.Path(field), Msg: fmt.Sprintf(format, args...)})
}

// Warnf records a warning with field.
func (v *Validator) Warnf(field, format string, args ...any) {
	v.list.warnings = append(v.list.warnings, Problem{Path: v.Path(field), Msg: fmt.Sprintf(format, args...)})
}

// Problems returns every problem recorded so far.
func (v *Validator) Problems() []Problem { return v.list.problems }

// Warnings returns every warning recorded so far.
func (v *Validator) Warnings() []Problem { return v.list.warnings }

// Secrets returns every secret Secret resolved so far (inline or read from
// its file), so the agent can keep them out of logs and status.
func (v *Validator) Secrets() []string { return v.list.secrets }

// Inline returns the paths of the secrets given inline in the config file,
// so the loader can warn when that file is readable by others.
func (v *Validator) Inline() []string { return v.list.inline }

// Required records "required" when value is empty.
func (v *Validator) Required(field, value string) bool {
	if strings.TrimSpace(value) == "" {
		v.Errorf(field, "required")
		return false
	}
	return true
}

// OneOf records a problem when value is not one of allowed.
func (v *Validator) OneOf(field, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		v.Errorf(field, "%q is not one of %s", value, strings.Join(allowed, "|"))
	}
}

// Positive records a problem when value is not > 0.
func (v *Validator) Positive(field string, value float64) {
	if !(value > 0) {
		v.Errorf(field, "must be > 0")
	}
}

// URL checks that value parses as an absolute URL with one of schemes. An
// empty value is recorded as required when required is true, and accepted
// otherwise.
func (v *Validator) URL(field, value string, required bool, schemes ...string) *url.URL {
	if value == "" {
		if required {
			v.Errorf(field, "required")
		}
		return nil
	}
	u, err := url.Parse(value)
	if err != nil || u.Host == "" {
		v.Errorf(field, "%q is not an absolute URL", value)
		return nil
	}
	if len(schemes) > 0 && !slices.Contains(schemes, u.Scheme) {
		v.Errorf(field, "scheme %q is not one of %s", u.Scheme, strings.Join(schemes, "|"))
		return nil
	}
	return u
}

// Secret resolves a credential given either inline (field) or in a file
// (fileField). It returns the secret with surrounding white space trimmed. A
// missing secret is a problem when required; both given is a problem; an
// unreadable file is a problem; a file readable by group or others is a
// warning. The secret itself never appears in a message.
func (v *Validator) Secret(field, inline, fileField, file string, required bool) string {
	switch {
	case inline != "" && file != "":
		v.Errorf(field, "give either %s or %s, not both", field, fileField)
		return ""
	case inline != "":
		v.Warnf(field, "secret given inline; prefer %s (a file readable only by the agent)", fileField)
		s := strings.TrimSpace(inline)
		v.list.secrets = append(v.list.secrets, s)
		v.list.inline = append(v.list.inline, v.Path(field))
		return s
	case file == "":
		if required {
			v.Errorf(fileField, "required (or %s)", field)
		}
		return ""
	case v.noSecrets:
		return ""
	}
	if fi, err := v.stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		v.Warnf(fileField, "%s is readable by group or others (mode %04o); chmod 600 it", file, fi.Mode().Perm())
	}
	b, err := v.readFile(file)
	if err != nil {
		v.Errorf(fileField, "cannot read secret: %v", err)
		return ""
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		v.Errorf(fileField, "%s is empty", file)
	}
	v.list.secrets = append(v.list.secrets, s)
	return s
}
