package camservertest

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// params reads request parameters the way the server does: the JSON body
// first, then the query string, then the default; a value of the wrong kind
// (number versus string) falls through to the next source
// (docs/protocols/camera-server.md §1.7).
type params struct {
	body  map[string]json.RawMessage
	query url.Values
}

func (p params) has(name string) bool {
	_, ok := p.body[name]
	return ok || p.query.Has(name)
}

// str returns a string parameter; objects and arrays become their JSON text.
func (p params) str(name string) string {
	if raw, ok := p.body[name]; ok {
		t := strings.TrimSpace(string(raw))
		switch {
		case strings.HasPrefix(t, `"`):
			var s string
			if json.Unmarshal(raw, &s) == nil {
				return s
			}
		case strings.HasPrefix(t, "{"), strings.HasPrefix(t, "["):
			return t
		}
	}
	if v := p.query.Get(name); v != "" && !numericLike(v) {
		return v
	}
	return ""
}

// strOr is str with the handler's default def for a missing or empty value.
func (p params) strOr(name, def string) string {
	if v := p.str(name); v != "" {
		return v
	}
	return def
}

// num returns an integer parameter (default 0; a JSON string is the wrong kind).
func (p params) num(name string) int64 {
	if raw, ok := p.body[name]; ok {
		var f float64
		if json.Unmarshal(raw, &f) == nil {
			return int64(f)
		}
	}
	if v, err := strconv.ParseInt(p.query.Get(name), 0, 64); err == nil {
		return v
	}
	return 0
}

func (p params) raw(name string) json.RawMessage { return p.body[name] }

// numericLike is the server's query-string typing: integers, floats, $hex,
// 0xhex and booleans are not strings.
func numericLike(v string) bool {
	if strings.EqualFold(v, "true") || strings.EqualFold(v, "false") {
		return true
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return true
	}
	if _, err := strconv.ParseInt(v, 0, 64); err == nil {
		return true
	}
	if strings.HasPrefix(v, "$") {
		if _, err := strconv.ParseUint(v[1:], 16, 64); err == nil {
			return true
		}
	}
	return false
}
