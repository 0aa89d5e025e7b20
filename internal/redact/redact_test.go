package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/redact/redacttest"
)

func TestTrustScrubMasksEveryForm(t *testing.T) {
	s := redact.New()
	s.Add("client-secret-1", "ab") // "ab" is below MinLen: ignored
	s.Set("link/access", "at-0123456789abcdef")
	for _, tc := range []struct {
		name, in, want string
	}{
		{"config secret", "refused client-secret-1 here", "refused [REDACTED] here"},
		{"token twice", "at-0123456789abcdef/at-0123456789abcdef", "[REDACTED]/[REDACTED]"},
		{"short ignored", "ab cd", "ab cd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Scrub(tc.in); got != tc.want {
				t.Errorf("Scrub(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	s.Add("a+b/c=secret")
	if got := s.Scrub("echo a%2Bb%2Fc%3Dsecret"); got != "echo [REDACTED]" {
		t.Errorf("query-escaped secret not masked: %q", got)
	}
}

func TestTrustSetKeepsCurrentAndPrevious(t *testing.T) {
	s := redact.New()
	s.Set("tok", "token-one")
	s.Set("tok", "token-two")
	s.Set("tok", "token-three")
	got := s.Scrub("token-one token-two token-three")
	if got != "token-one [REDACTED] [REDACTED]" {
		t.Errorf("got %q: want the current and previous value masked, the older one dropped", got)
	}
	if n := s.Len(); n != 2 {
		t.Errorf("Len = %d after three rotations, want 2 (the set must not grow with rotations)", n)
	}
}

// TestTrustPeerScrubsBeforeBounding: a bound applied first would cut a
// token and leave its prefix in the text.
func TestTrustPeerScrubsBeforeBounding(t *testing.T) {
	s := redact.New()
	tok := "at-" + strings.Repeat("f", 60)
	s.Set("a", tok)
	in := strings.Repeat("x", 50) + tok
	got := s.Peer(in, 80)
	if strings.Contains(got, "fffff") {
		t.Errorf("Peer left part of the token: %q", got)
	}
	if !strings.HasSuffix(got, redact.Mask) {
		t.Errorf("Peer(%q) = %q", in, got)
	}
}

// TestTrustPeerMasksAcrossControlChars: Peer masked before it removed
// control characters, so a secret echoed with one inside it (a NUL, an
// escape) matched no mask and came out whole once they were stripped.
func TestTrustPeerMasksAcrossControlChars(t *testing.T) {
	s := redact.New()
	tok := redacttest.Secret100()
	s.Add(tok)
	in := "echo " + tok[:40] + "\x00\x1b" + tok[40:] + " end"
	got := s.Peer(in, 0)
	if leak := redacttest.LeakedPrefix(got, tok); leak != "" {
		t.Errorf("Peer(%q) = %q: leaks %q", in, got, leak)
	}
	if got != "echo "+redact.Mask+" end" {
		t.Errorf("Peer(%q) = %q", in, got)
	}
}

// TestTrustPeerHeadDropsACutSecret: a reply body read up to a limit may end
// in the start of a secret the peer echoed; masking cannot match it, so
// Peer alone let it through (here once the control characters padding the
// body were stripped, well within the bound).
func TestTrustPeerHeadDropsACutSecret(t *testing.T) {
	s := redact.New()
	tok := redacttest.Secret100()
	s.Add(tok)
	for _, tc := range []struct {
		name, head string
	}{
		{"after text", "error: " + tok[:40]},
		{"after padding stripped", strings.Repeat("\x01", 4000) + tok[:40]},
		{"after a whole echo", tok + " and " + tok[:40]},
		{"percent-encoded", "key=" + url.QueryEscape(tok)[:40]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.PeerHead(tc.head, 200)
			if leak := redacttest.LeakedPrefix(got, tok); leak != "" {
				t.Errorf("PeerHead = %q: leaks %q", got, leak)
			}
			if !strings.HasSuffix(got, "…") {
				t.Errorf("PeerHead = %q: not marked as cut", got)
			}
		})
	}
	if got := s.PeerHead("plain reason", 0); got != "plain reason…" {
		t.Errorf("PeerHead kept %q of text without a secret", got)
	}
}

func TestTrustCleanStripsControlAndBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"title escape", "\x1b]0;pwned\x07name", 0, "]0;pwnedname"},
		{"clear screen", "a\x1b[2J\x1b[Hb", 0, "a[2J[Hb"},
		{"newline and CR", "line1\r\nline2", 0, "line1line2"},
		{"C1 CSI", "a\u009b2Jb", 0, "a2Jb"},
		{"bidi override", "abc\u202edcba", 0, "abcdcba"},
		{"invalid utf8", "a\xffb", 0, "ab"},
		{"bound on rune", "ééé", 3, "é…"},
		{"fits", "abc", 3, "abc"},
		{"unicode kept", "Projekt Ä", 0, "Projekt Ä"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redact.Clean(tc.in, tc.max); got != tc.want {
				t.Errorf("Clean(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

func TestTrustNilSecretsStillCleans(t *testing.T) {
	var s *redact.Secrets
	s.Add("whatever")
	s.Set("x", "whatever")
	if got := s.Peer("a\x1bb", 0); got != "ab" {
		t.Errorf("nil Peer = %q", got)
	}
	if err := s.Err(fs.ErrNotExist); err != fs.ErrNotExist {
		t.Errorf("nil Err changed the error")
	}
}

func TestTrustErrKeepsChain(t *testing.T) {
	s := redact.New()
	s.Add("hunter22")
	err := s.Err(fmt.Errorf("login hunter22: %w", fs.ErrPermission))
	if strings.Contains(err.Error(), "hunter22") {
		t.Errorf("Err text holds the secret: %v", err)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("Err lost the chain")
	}
	plain := errors.New("nothing secret")
	if s.Err(plain) != plain {
		t.Error("an error without a secret was wrapped")
	}
}

type stringer struct{ s string }

func (x stringer) String() string { return x.s }

func TestTrustHandlerScrubsEveryAttr(t *testing.T) {
	s := redact.New()
	s.Add("sekrit-key")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&buf, nil)
			if format == "json" {
				h = slog.NewJSONHandler(&buf, nil)
			}
			log := slog.New(s.Handler(h)).With("with", "w sekrit-key")
			s.Set("late", "late-token") // registered after the logger was made
			log.Info("msg sekrit-key",
				"str", "s sekrit-key",
				"err", errors.New("e sekrit-key late-token"),
				"stringer", stringer{"st sekrit-key"},
				"bytes", []byte("b sekrit-key"),
				"map", map[string]string{"k": "sekrit-key"},
				slog.Group("g", "inner", "i sekrit-key"),
				"long", strings.Repeat("y", 3*redact.MaxLogValue),
				"n", 42)
			out := buf.String()
			for _, leak := range []string{"sekrit-key", "late-token"} {
				if strings.Contains(out, leak) {
					t.Errorf("%q reached the log: %s", leak, out)
				}
			}
			if strings.Contains(out, strings.Repeat("y", redact.MaxLogValue+1)) {
				t.Error("a long value was not bounded")
			}
			if !strings.Contains(out, "42") {
				t.Errorf("a number was lost: %s", out)
			}
		})
	}
}
