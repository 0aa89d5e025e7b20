// Package redacttest has what the secret-leak tests of every link share: a
// secret whose every 8-character run identifies it, and a check for how
// much of it a text gives away.
package redacttest

import (
	"fmt"
	"strings"
)

// Secret100 is a 100-character secret with no repeated 8-character run, so
// any 8 of its characters in a row identify it.
func Secret100() string {
	var b strings.Builder
	for i := 0; b.Len() < 100; i++ {
		fmt.Fprintf(&b, "%02x", (i*37+11)%256)
	}
	return b.String()[:100]
}

// LeakedPrefix returns the longest prefix of secret, 8 characters or more,
// found in text ("" when none).
func LeakedPrefix(text, secret string) string {
	if !strings.Contains(text, secret[:8]) {
		return ""
	}
	n := 8
	for n < len(secret) && strings.Contains(text, secret[:n+1]) {
		n++
	}
	return secret[:n]
}
