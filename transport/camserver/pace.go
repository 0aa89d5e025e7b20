package camserver

import (
	"sync"
	"time"
)

// pollShare is the part of the link's own request budget (the client's
// token bucket, docs/protocols/camera-server.md §5.2) that fast polling may
// take. The rest is left for what the commands cause: addRecord for each
// snapshot, addMsgs for each status reply, re-authorization. At the server's
// default of 50 requests a minute the bucket holds 30 a minute, so fast
// polls come at most every 4 s.
const pollShare = 0.5

// pollPace chooses the message poll's interval
// (docs/protocols/camera-server.md §6.4). Nothing is pushed by the server
// (§6.1), so a command waits for the next poll: up to poll (10 s by
// default; the real server showed 4 to 9 s from a viewer's message to the
// record). A viewer that sends one command usually sends more (a snapshot
// after a status, stream_stop after stream_start), so for poll_fast_for
// after each command taken the poll runs at poll_fast, raised to what
// pollShare of the request budget allows; then it returns to poll.
//
// Only commands that passed the gate (commands.from, the sender's bucket)
// count: another device of the account cannot raise the board's request
// rate with notes or refused commands.
//
// Concurrency: safe for concurrent use (the pace lives in the Link, so a
// new session's poll, which may start while the old one ends, keeps it).
type pollPace struct {
	idle, fast, hold time.Duration

	mu    sync.Mutex
	until time.Time // fast polling until then; zero: idle
}

func newPollPace(c *Config) *pollPace {
	return &pollPace{idle: c.Poll.D(), fast: c.PollFast.D(), hold: c.PollFastFor.D()}
}

// command notes a command taken at now: poll fast until now+hold.
func (p *pollPace) command(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := now.Add(p.hold); u.After(p.until) {
		p.until = u
	}
}

// next returns the wait before the next poll at now, and whether it is the
// fast one. floor is the least spacing the request budget allows for fast
// polls (Client.spacing); the fast wait is never longer than the idle one.
// The comparison uses the clock's times as given: with the wall clock they
// carry a monotonic reading, so a wall-clock jump does not stretch or cut
// the fast period.
func (p *pollPace) next(now time.Time, floor time.Duration) (time.Duration, bool) {
	p.mu.Lock()
	active := now.Before(p.until)
	p.mu.Unlock()
	if w := max(p.fast, floor); active && w < p.idle {
		return w, true
	}
	return p.idle, false
}
