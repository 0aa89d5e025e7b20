package console

import (
	"fmt"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/status"
)

func snapOf(l ...status.LinkStatus) status.Snapshot { return status.Snapshot{Links: l} }

// TestHistoryRecordsChanges: each look records a change of state (dated by
// the state's own Since), a new error in the same state, the reconnects
// that happened unseen between two looks, and a restart by a reload; an
// unchanged link records nothing; a removed link is forgotten.
func TestHistoryRecordsChanges(t *testing.T) {
	h := newHistory(HistoryLen)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	steps := []status.LinkStatus{
		{Name: "l", State: "connecting", Since: at(0)},
		{Name: "l", State: "connecting", Since: at(0)}, // unchanged
		{Name: "l", State: "up", Since: at(1), Sessions: 1},
		{Name: "l", State: "backoff", Since: at(5), LastError: "read: connection reset", Reconnects: 1, Sessions: 1},
		{Name: "l", State: "backoff", Since: at(5), LastError: "read: connection reset", Reconnects: 1, Sessions: 1},
		// Three sessions came and went between two looks.
		{Name: "l", State: "up", Since: at(20), LastError: "dial: refused", Reconnects: 4, Sessions: 4},
		// A reload restarted the link: its counters start again.
		{Name: "l", State: "connecting", Since: at(30)},
	}
	for _, s := range steps {
		h.observe(snapOf(s))
	}
	got := h.events("l")
	want := []Event{
		{At: at(0), State: "connecting"},
		{At: at(1), State: "up"},
		{At: at(5), State: "backoff", Error: "read: connection reset"},
		{At: at(20), State: "up", Note: "3 sessions ended since the previous entry"},
		{At: at(30), State: "connecting", Note: "the link was restarted"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	h.observe(snapOf(status.LinkStatus{Name: "other", State: "up", Since: at(40)}))
	if h.events("l") != nil {
		t.Error("a link the snapshot no longer has is still remembered")
	}
	if ev := h.events("other"); len(ev) != 1 || ev[0].State != "up" {
		t.Errorf("other: %v", ev)
	}
}

// TestHistoryIsBounded: a flapping link keeps the last HistoryLen events,
// oldest first.
func TestHistoryIsBounded(t *testing.T) {
	h := newHistory(HistoryLen)
	t0 := time.Unix(1e9, 0)
	states := []string{"connecting", "up", "backoff"}
	for i := range 500 {
		h.observe(snapOf(status.LinkStatus{Name: "l", State: states[i%3], Since: t0.Add(time.Duration(i) * time.Second),
			Reconnects: uint64(i / 3)}))
	}
	ev := h.events("l")
	if len(ev) != HistoryLen {
		t.Fatalf("%d events, want %d", len(ev), HistoryLen)
	}
	for i, e := range ev {
		if want := t0.Add(time.Duration(500-HistoryLen+i) * time.Second); !e.At.Equal(want) {
			t.Fatalf("event %d at %v, want %v", i, e.At, want)
		}
	}
}
