package camserver

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxSenders bounds the per-sender buckets kept: device names are chosen by
// whoever authorizes on the account, so a hostile member could invent any
// number of them. Past it the sender seen least recently is forgotten (it
// starts again with a full burst, which is still rate-limited per name).
const maxSenders = 64

// commandGate decides whether a message is taken as a command: its sender
// must be listed in commands.from (when the list is set) and have a token
// left in its bucket (commands.burst, refilled at commands.per_minute).
// Every device of the account can message this board, broadcasts included:
// without the gate another board's 3 requests of 100 snapshot messages made
// 300 records.
//
// Concurrency: safe for concurrent use (a new session's poll may start while
// the old one ends). The buckets live in the Link, so a reconnect does not
// refill them.
type commandGate struct {
	from  map[string]bool // nil: any sender
	every rate.Limit
	burst int

	mu      sync.Mutex
	senders map[string]*sender
	refused uint64 // commands from devices not in from
	limited uint64 // commands over a sender's bucket
}

type sender struct {
	lim  *rate.Limiter
	seen time.Time
}

func newCommandGate(c Commands) *commandGate {
	g := &commandGate{every: rate.Limit(float64(max(c.PerMinute, 1)) / 60), burst: max(c.Burst, 1),
		senders: map[string]*sender{}}
	if len(c.From) > 0 {
		g.from = make(map[string]bool, len(c.From))
		for _, d := range c.From {
			g.from[d] = true
		}
	}
	return g
}

// Verdicts of allow.
const (
	gateOK      = ""
	gateRefused = "commands_refused"      // sender not in commands.from
	gateLimited = "commands_rate_limited" // sender over its bucket
)

// allow reports gateOK when a command from device may run now; otherwise it
// counts the refusal and returns its kind (also the status detail key) and
// the count so far.
func (g *commandGate) allow(device string, now time.Time) (verdict string, count uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.from != nil && !g.from[device] {
		g.refused++
		return gateRefused, g.refused
	}
	sd := g.senders[device]
	if sd == nil {
		if len(g.senders) >= maxSenders {
			g.evictLocked()
		}
		sd = &sender{lim: rate.NewLimiter(g.every, g.burst)}
		g.senders[device] = sd
	}
	sd.seen = now
	if !sd.lim.AllowN(now, 1) {
		g.limited++
		return gateLimited, g.limited
	}
	return gateOK, 0
}

// evictLocked forgets the sender seen least recently.
func (g *commandGate) evictLocked() {
	var oldest string
	var at time.Time
	for name, sd := range g.senders {
		if oldest == "" || sd.seen.Before(at) {
			oldest, at = name, sd.seen
		}
	}
	delete(g.senders, oldest)
}

// maxIDLen bounds the params.id echoed back in a status reply.
const maxIDLen = 128

// commandID is a command's params.id as the sender wrote it: a JSON string
// or number, kept as its JSON text so that a reply echoes it unchanged (a
// numeric id used to come back as null). Anything else (objects, arrays,
// booleans, over maxIDLen bytes) is ignored: no id.
type commandID []byte

// UnmarshalJSON keeps a string or number; it never fails, so a strange id
// does not cost the rest of the params.
func (id *commandID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*id = nil
	if len(b) == 0 || len(b) > maxIDLen {
		return nil
	}
	if c := b[0]; c == '"' || c == '-' || (c >= '0' && c <= '9') {
		*id = append(commandID(nil), b...)
	}
	return nil
}

// JSON returns the id for a reply: its JSON text, or nil for none.
func (id commandID) JSON() json.RawMessage {
	if len(id) == 0 {
		return nil
	}
	return json.RawMessage(id)
}

// String is the id as text (a string's value, a number's literal), as kept
// with a spooled record.
func (id commandID) String() string {
	if len(id) > 0 && id[0] == '"' {
		var s string
		_ = json.Unmarshal(id, &s)
		return s
	}
	return string(id)
}
