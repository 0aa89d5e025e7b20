// Package transport defines the contract between the agent's link supervisor
// and the four cloud links (edgeimpulse, rtm, frameio, camserver), each in its
// own sub-package with an in-process fake of its service in a …test
// sub-package, like net/http/httptest.
//
// A Link makes one connection attempt per Dial and never retries by itself:
// the supervisor (agent/supervisor) owns reconnection, backoff and state. A
// link returns retry.Permanent(err) for errors that retrying cannot fix (bad
// credentials) and retry.RetryAfter(err, d) when the peer asked for a wait.
package transport

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/timesync"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// Link is one configured cloud link.
type Link interface {
	// Dial makes one connection attempt. It returns a Session once the link
	// is up (handshake done), or an error.
	Dial(ctx context.Context) (Session, error)
}

// Session is one live connection.
type Session interface {
	// Serve blocks while the connection is healthy and returns why it ended.
	// It returns nil (or ctx.Err()) when ctx ended.
	Serve(ctx context.Context) error
	// Close releases the connection; safe to call after Serve returned.
	Close() error
}

// Worker is implemented by links that have work outside a session, such as
// delivering spooled uploads over plain HTTPS while the socket is down. The
// supervisor runs Work for the link's whole life and waits for it on stop.
type Worker interface {
	Work(ctx context.Context) error
}

// Device is the board's identity as resolved from the config.
type Device struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// Deps is what the agent hands every link constructor.
type Deps struct {
	Name     string // the link's instance name
	Logger   *slog.Logger
	Hub      sensors.Hub
	Device   Device
	StateDir string       // the link's own directory under state_dir, created 0700
	Spool    *spool.Spool // the link's own durable spool (nil for links that need none)
	Stats    *Stats
	Clock    clock.Clock
	// Time says whether the wall clock is synchronized and resolves capture
	// stamps (a spool item's Stamp) to their true time and age; it is the
	// one the agent gives the link's spool, so stamps resolve against the
	// clocks they were taken on.
	Time    *timesync.Sync
	Version string // agent version, sent where a service wants a client version
	// Secrets holds the agent's secrets: a link registers the tokens it
	// obtains (Set) and passes every peer-supplied string through Peer
	// before it logs it, returns it in an error or shows it as a detail.
	// Nil is valid (text is still cleaned and bounded).
	Secrets *redact.Secrets
}

// WithDefaults returns d with the optional dependencies filled in, the same
// way for every link: a discarding logger, fresh Stats, the real clock, the
// board's own time source and a private secrets set (a link alone still
// keeps its own secrets out of its logs). Hub, Spool and StateDir have no default; a link that needs one
// checks for it in its constructor and says so.
func (d Deps) WithDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Stats == nil {
		d.Stats = &Stats{}
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Secrets == nil {
		d.Secrets = redact.New()
	}
	if d.Time == nil {
		d.Time = timesync.New(timesync.System(), timesync.Options{Logger: d.Logger})
	}
	return d
}

// Stats are a link's counters and status details, read by /status and
// /metrics. All methods are safe for concurrent use.
type Stats struct {
	BytesIn, BytesOut atomic.Int64
	MsgsIn, MsgsOut   atomic.Int64

	mu      sync.Mutex
	details map[string]string
}

// SetDetail records a link-specific status value shown in /status, such as
// "paused": "true" or "recording": "STARTED". An empty value removes it.
func (s *Stats) SetDetail(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.details == nil {
		s.details = map[string]string{}
	}
	if value == "" {
		delete(s.details, key)
		return
	}
	s.details[key] = value
}

// Details returns a copy of the status details.
func (s *Stats) Details() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.details))
	for k, v := range s.details {
		out[k] = v
	}
	return out
}

// DetailKeys returns the detail keys in sorted order.
func (s *Stats) DetailKeys() []string {
	d := s.Details()
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SimService is one in-process fake cloud started by `edge-agent sim` and
// `edge-agent demo`. Each link's …test package provides a constructor.
type SimService interface {
	// Kind is the link kind it fakes (edgeimpulse, rtm, frameio, camserver).
	Kind() string
	// URLs lists the service's endpoints, printed as one JSON line by `sim`.
	URLs() map[string]string
	// DemoLink returns a link config block (a pointer to the link package's
	// Config) that points the agent at this fake. secretDir is a private
	// directory where the fake may write token/key files the block refers to.
	DemoLink(secretDir string) (any, error)
	// Close stops the fake and waits for its goroutines.
	Close() error
}
