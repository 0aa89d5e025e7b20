package camserver

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// checkName rejects a value that the server's query-string decoder would
// turn into a number or boolean and then silently replace with the default
// (docs/protocols/camera-server.md §1.7): device names, subproto and meta must
// contain a letter and must not parse as an integer, a float, a boolean,
// $hex or 0xhex.
func checkName(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: empty", field)
	}
	if looksNumeric(s) {
		return fmt.Errorf("%s %q looks like a number or boolean; the server would drop it", field, s)
	}
	if !strings.ContainsFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }) {
		return fmt.Errorf("%s %q must contain a letter", field, s)
	}
	return nil
}

func looksNumeric(s string) bool {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "true") || strings.EqualFold(t, "false") {
		return true
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return true
	}
	if _, err := strconv.ParseInt(t, 0, 64); err == nil {
		return true
	}
	if strings.HasPrefix(t, "$") {
		if _, err := strconv.ParseUint(t[1:], 16, 64); err == nil {
			return true
		}
	}
	return false
}

func isCode(err error, c Code) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == c
}
