package console

import (
	"fmt"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/status"
)

// Event is one entry of a link card's history: the link entered State at
// At (the supervisor's own time of the change), or reported a new error
// while in it. Note says what the poller could not see one by one.
type Event struct {
	At    time.Time `json:"at"`
	State string    `json:"state"`
	Error string    `json:"error,omitempty"`
	Note  string    `json:"note,omitempty"`
}

// history keeps the last n events of every link, newest last. It learns
// them by looking at the status snapshot (the poller in Run, and every API
// request for the links): the supervisor keeps no history, and asking it
// to call back would tie it to the console. A change is dated by the
// state's Since, so it carries its real time however late it is seen; the
// changes between two looks that were undone before the second one (a
// session that came up and ended within a second) are not listed one by
// one, but the reconnect counter shows them and the event says how many.
//
// Concurrency: safe for concurrent use; one mutex guards everything.
type history struct {
	n int

	mu    sync.Mutex
	links map[string]*linkHistory
}

type linkHistory struct {
	last   status.LinkStatus
	seen   bool
	events []Event // ring of n; start is the oldest
	start  int
}

func newHistory(n int) *history { return &history{n: n, links: map[string]*linkHistory{}} }

// observe records what changed since the last look at each link of s, and
// forgets links s no longer has (a reload removed them).
func (h *history) observe(s status.Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	present := make(map[string]bool, len(s.Links))
	for _, l := range s.Links {
		present[l.Name] = true
		lh := h.links[l.Name]
		if lh == nil {
			lh = &linkHistory{}
			h.links[l.Name] = lh
		}
		h.observeLink(lh, l)
	}
	for name := range h.links {
		if !present[name] {
			delete(h.links, name)
		}
	}
}

func (h *history) observeLink(lh *linkHistory, l status.LinkStatus) {
	prev := lh.last
	lh.last = l
	if !lh.seen {
		lh.seen = true
		h.addLocked(lh, Event{At: l.Since, State: l.State, Error: errorIn(l)})
		return
	}
	// A link restarted by a reload starts its counters again.
	restarted := l.Reconnects < prev.Reconnects || l.Sessions < prev.Sessions
	changed := l.State != prev.State || !l.Since.Equal(prev.Since)
	switch {
	case changed || restarted:
		ev := Event{At: l.Since, State: l.State, Error: errorIn(l)}
		if !restarted {
			// Each reconnect is one session that ended; the states between
			// the two looks beyond the one now shown went unseen.
			if missed := l.Reconnects - prev.Reconnects; missed > 1 || (missed == 1 && l.State == "up" && prev.State == "up") {
				ev.Note = fmt.Sprintf("%d sessions ended since the previous entry", missed)
			}
		} else {
			ev.Note = "the link was restarted"
		}
		h.addLocked(lh, ev)
	case l.LastError != prev.LastError && l.LastError != "":
		h.addLocked(lh, Event{At: l.Since, State: l.State, Error: l.LastError, Note: "new error"})
	}
}

// errorIn is the error worth showing with a state: the last error explains
// a backoff or a failure; while connecting or up it is the previous one.
func errorIn(l status.LinkStatus) string {
	switch l.State {
	case "backoff", "failed":
		return l.LastError
	}
	return ""
}

func (h *history) addLocked(lh *linkHistory, ev Event) {
	if len(lh.events) < h.n {
		lh.events = append(lh.events, ev)
		return
	}
	lh.events[lh.start] = ev
	lh.start = (lh.start + 1) % h.n
}

// events returns link's events, oldest first (nil for an unknown link).
func (h *history) events(link string) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	lh := h.links[link]
	if lh == nil {
		return nil
	}
	out := make([]Event, 0, len(lh.events))
	out = append(out, lh.events[lh.start:]...)
	return append(out, lh.events[:lh.start]...)
}
