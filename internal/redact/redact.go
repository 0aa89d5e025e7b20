// Package redact keeps the secrets this process holds and removes them from
// text before it is logged or shown. A peer (a cloud service, a proxy in
// between) can echo anything it was sent back in an error message; the agent
// must not copy a token it presented into the journal or the status page
// because the peer returned it.
//
// One Secrets set is made per agent: the config's secrets are added when the
// config is loaded (conf.Validator collects them), and the links register the
// secrets they obtain at run time (access and refresh tokens, re-read key
// files) under a slot that keeps only the current and the previous value, so
// rotating tokens do not grow the set. Every peer-supplied string goes through
// Peer (scrub, strip control characters, bound the length) where it enters an
// error, a log line or a status detail; the agent's logger and status
// snapshot scrub once more as a backstop.
//
// Concurrency: a Secrets is safe for concurrent use. A nil *Secrets holds no
// secret and its methods still clean and bound text.
package redact

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Mask replaces every occurrence of a secret.
const Mask = "[REDACTED]"

// MinLen is the shortest secret registered: shorter strings would mask
// ordinary words all over the logs and protect next to nothing.
const MinLen = 4

// MaxLogValue bounds each string the logging handler passes on; peer text
// should be bounded far below this where it is read, this only catches the
// places that forgot.
const MaxLogValue = 2048

// Secrets is a set of secret strings. The zero value is not usable; call New.
type Secrets struct {
	mu    sync.RWMutex
	fixed map[string]bool
	slots map[string][2]string // slot → current, previous
	list  []string             // every form of every secret, longest first
}

// New returns an empty set.
func New() *Secrets {
	return &Secrets{fixed: map[string]bool{}, slots: map[string][2]string{}}
}

// Add registers secrets that stay for the life of the process (config
// secrets). Strings shorter than MinLen are ignored.
func (s *Secrets) Add(secrets ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secrets {
		if v = strings.TrimSpace(v); len(v) >= MinLen {
			s.fixed[v] = true
		}
	}
	s.rebuildLocked()
}

// Set registers the current value of a rotating secret under slot (for
// example "frameio/main/access"). The previous value stays registered too,
// because an error about a request made with it may still be on its way; the
// one before is dropped.
func (s *Secrets) Set(slot, secret string) {
	if s == nil {
		return
	}
	secret = strings.TrimSpace(secret)
	if len(secret) < MinLen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.slots[slot]
	if cur[0] == secret {
		return
	}
	s.slots[slot] = [2]string{secret, cur[0]}
	s.rebuildLocked()
}

func (s *Secrets) rebuildLocked() {
	seen := map[string]bool{}
	var list []string
	add := func(v string) {
		if v == "" || seen[v] {
			return
		}
		seen[v] = true
		list = append(list, v)
		// A peer may echo a secret the way it arrived in a form or query.
		if q := url.QueryEscape(v); q != v && !seen[q] {
			seen[q] = true
			list = append(list, q)
		}
	}
	for v := range s.fixed {
		add(v)
	}
	for _, p := range s.slots {
		add(p[0])
		add(p[1])
	}
	// Longest first, so a secret containing another is masked whole.
	sort.Slice(list, func(i, j int) bool {
		if len(list[i]) != len(list[j]) {
			return len(list[i]) > len(list[j])
		}
		return list[i] < list[j]
	})
	s.list = list
}

// Len is the number of secret forms held (for tests and the status page).
func (s *Secrets) Len() int {
	if s == nil {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.list)
}

// Scrub returns text with every registered secret replaced by Mask.
func (s *Secrets) Scrub(text string) string {
	if s == nil || text == "" {
		return text
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.list {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, Mask)
		}
	}
	return text
}

// Contains reports whether text holds a registered secret.
func (s *Secrets) Contains(text string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.list {
		if strings.Contains(text, v) {
			return true
		}
	}
	return false
}

// Peer makes a peer-supplied string safe to log, show or print: secrets are
// masked first (so a bound cannot cut one in half and leave a prefix), then
// control and format characters are removed (a terminal must not take them
// as commands) and the result is cut to at most max bytes on a character
// boundary, with "…" when something was cut. max <= 0 means no bound.
// Secrets are masked again once the control characters are gone: a secret
// with one of them inside would otherwise come out whole.
func (s *Secrets) Peer(text string, max int) string {
	return Clean(s.Scrub(Clean(s.Scrub(text), 0)), max)
}

// PeerHead is Peer for text that is only the head of a longer peer text (a
// reply body read up to a limit). That cut came before any masking, so text
// may end in the first bytes of a secret, which Scrub cannot recognise: the
// longest tail of text that begins a registered secret is dropped too, and
// the result always ends in "…".
func (s *Secrets) PeerHead(text string, max int) string {
	text = s.Scrub(Clean(s.Scrub(text), 0))
	return Clean(s.dropSecretStart(text)+"…", max)
}

// dropSecretStart removes the longest suffix of text that is a proper
// prefix of a registered secret (a whole one was masked before).
func (s *Secrets) dropSecretStart(text string) string {
	if s == nil || text == "" {
		return text
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	last := text[len(text)-1]
	cut := 0
	for _, v := range s.list {
		for n := min(len(v)-1, len(text)); n > cut; n-- {
			if v[n-1] == last && strings.HasSuffix(text, v[:n]) {
				cut = n
				break
			}
		}
	}
	return text[:len(text)-cut]
}

// Clean removes control and format characters (C0, DEL, C1, bidi overrides,
// zero-width characters) and invalid UTF-8 from text and bounds it to max
// bytes (max <= 0: no bound), marking a cut with "…".
func Clean(text string, max int) string {
	var b strings.Builder
	if max > 0 && max < len(text) {
		b.Grow(max + len("…"))
	} else {
		b.Grow(len(text))
	}
	cut := false
	for i, r := range text {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(text[i:]); n <= 1 {
				continue
			}
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		if max > 0 && b.Len()+utf8.RuneLen(r) > max {
			cut = true
			break
		}
		b.WriteRune(r)
	}
	if cut {
		b.WriteString("…")
	}
	return b.String()
}

// Err returns err with its text scrubbed. The chain is kept for errors.Is
// and errors.As; only Error() changes. Nil stays nil, and an error without a
// secret is returned as it is.
func (s *Secrets) Err(err error) error {
	if err == nil || s == nil {
		return err
	}
	msg := err.Error()
	clean := s.Scrub(msg)
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// Handler wraps h so that every record's message and string-valued
// attributes (errors and Stringers included, groups recursively) are
// scrubbed and bounded to MaxLogValue before h sees them. It is the backstop
// behind Peer: whatever a link forgot to clean still reaches the journal
// without a registered secret.
func (s *Secrets) Handler(h slog.Handler) slog.Handler {
	if s == nil {
		return h
	}
	return &handler{s: s, h: h}
}

type handler struct {
	s *Secrets
	h slog.Handler
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, h.s.Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(h.s.attr(a))
		return true
	})
	return h.h.Handle(ctx, nr)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = h.s.attr(a)
	}
	return &handler{s: h.s, h: h.h.WithAttrs(out)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{s: h.s, h: h.h.WithGroup(name)}
}

// attr returns a with its text scrubbed and bounded; values without text
// (numbers, times, durations) are returned as they are.
func (s *Secrets) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.logText(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = s.attr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		var text string
		switch x := v.Any().(type) {
		case nil:
			return a
		case error:
			text = x.Error()
		case fmt.Stringer:
			text = x.String()
		case []byte:
			text = string(x)
		default:
			text = fmt.Sprintf("%+v", x)
		}
		if clean := s.logText(text); clean != text {
			return slog.String(a.Key, clean)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// logText scrubs text and bounds it to MaxLogValue. Control characters are
// left to the handler below (slog quotes them), so nothing is lost.
func (s *Secrets) logText(text string) string {
	text = s.Scrub(text)
	if len(text) <= MaxLogValue {
		return text
	}
	i := MaxLogValue
	for i > 0 && !utf8.RuneStart(text[i]) {
		i--
	}
	return text[:i] + "…"
}
