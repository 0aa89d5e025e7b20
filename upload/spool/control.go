package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
)

// What a user steers while the spool runs (the web console's uploads view):
// the queue with each item's delivery record, cancelling, sending now, and
// the upload mode. Deliver honours all of it; see DeliverFunc for what a
// deliverer sees when the item in flight is cancelled or paused.

var (
	// ErrNotFound is returned for an id that is not queued (delivered,
	// refused or cancelled meanwhile, or never there).
	ErrNotFound = errors.New("no such item in the spool")
	// ErrCancelled is the cause of the delivery context of an item a user
	// cancelled; the item is already gone from the spool.
	ErrCancelled = errors.New("upload cancelled by the user")
	// ErrPaused is the cause of the delivery context of an item in flight
	// when a user paused uploading; the item stays queued.
	ErrPaused = errors.New("uploading paused by the user")
)

// modeFile keeps the upload mode in the spool's directory. recover ignores
// it (no item suffix).
const modeFile = "upload-mode.json"

// modeRecord is modeFile: the mode a user chose, and the config's mode at
// that time, so a later change of the config wins over the old choice.
type modeRecord struct {
	Manual       bool `json:"manual"`
	ConfigManual bool `json:"config_manual"`
}

// flight is the item Deliver is sending.
type flight struct {
	id      string
	body    *os.File
	started time.Time
	sent    int64 // last ReportSent; -1: none
	cancel  context.CancelCauseFunc
	manual  bool // sent on request while paused
}

// attempt is an item's delivery record since the spool opened. It is kept
// in memory only: writing it per attempt would cost an fsync on the board's
// SD card each time, for a figure that only informs.
type attempt struct {
	n      int
	lastAt time.Time
	nextAt time.Time // when the failed item is tried again; zero: not waiting
	err    string
}

// Entry is one queued item as List shows it.
type Entry struct {
	Item
	// Attempts counts the delivery attempts started since the spool opened
	// (the one in flight included); LastError is the last failure's text.
	Attempts    int
	LastError   string
	LastAttempt time.Time
	// NextAttempt is when a failed item is tried again (zero when it is not
	// waiting out a backoff).
	NextAttempt time.Time
	// InFlight marks the item being sent now, since Started; Sent is how
	// many of its bytes went out: what the deliverer reported (ReportSent),
	// else how far it read the body (a streamed request body: what was
	// handed to the socket), -1 when unknown.
	InFlight bool
	Started  time.Time
	Sent     int64
	// Requested marks the item RetryNow asked for, sent before any other.
	Requested bool
}

// List returns the queued items, oldest first, with their delivery records.
func (s *Spool) List() []Entry {
	s.mu.Lock()
	out := make([]Entry, 0, len(s.items))
	for id, it := range s.items {
		e := Entry{Item: it, Sent: -1, Requested: id == s.next}
		if a := s.tries[id]; a != nil {
			e.Attempts, e.LastError, e.LastAttempt, e.NextAttempt = a.n, a.err, a.lastAt, a.nextAt
		}
		out = append(out, e)
	}
	fl := s.flight
	var fid string
	var fsent int64
	var fbody *os.File
	var fstart time.Time
	if fl != nil {
		fid, fsent, fbody, fstart = fl.id, fl.sent, fl.body, fl.started
	}
	s.mu.Unlock()
	sortEntries(out)
	for i := range out {
		if out[i].ID != fid {
			continue
		}
		out[i].InFlight, out[i].Started, out[i].Sent = true, fstart, fsent
		if fsent < 0 {
			// The read offset of the body the deliverer streams. The file
			// may be closed by now (the delivery ended): then unknown.
			if off, err := fbody.Seek(0, io.SeekCurrent); err == nil {
				out[i].Sent = min(off, out[i].Size)
			}
		}
	}
	return out
}

func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID })
}

// ReportSent records that n bytes of item id went out (the item in flight;
// ignored for any other). A deliverer that sends parts with ReadAt calls it
// after each part.
func (s *Spool) ReportSent(id string, n int64) {
	s.mu.Lock()
	if s.flight != nil && s.flight.id == id {
		s.flight.sent = n
	}
	s.mu.Unlock()
}

// Cancel drops item id for good: it is removed durably (its metadata first,
// the directory fsynced, as Remove does) and counted in Stats.Cancelled.
// When it is in flight its delivery is stopped (the deliverer's context ends
// with ErrCancelled). It returns ErrNotFound when id is not queued.
func (s *Spool) Cancel(id string) error {
	s.progMu.Lock()
	defer s.progMu.Unlock()
	s.mu.Lock()
	// The item is forgotten in the same critical section that stops its
	// delivery, so Deliver, woken by the stop, can never pick it again.
	if !s.forgetLocked(id, &s.cancelled) {
		s.mu.Unlock()
		return fmt.Errorf("spool cancel %s: %w", id, ErrNotFound)
	}
	if s.flight != nil && s.flight.id == id {
		s.flight.cancel(ErrCancelled)
	}
	if s.next == id {
		s.next = ""
	}
	s.mu.Unlock()
	s.log.Info("spool: item cancelled by the user", "id", id)
	defer s.poke()
	if err := s.removeFiles(id); err != nil {
		return fmt.Errorf("spool cancel: %w", err)
	}
	return nil
}

// CancelAll cancels every queued item as Cancel does, the one in flight
// included, and returns how many it dropped. The metadata files go first,
// with one directory fsync for all of them.
func (s *Spool) CancelAll() (int, error) {
	s.progMu.Lock()
	defer s.progMu.Unlock()
	s.mu.Lock()
	ids := make([]string, 0, len(s.items))
	for id, it := range s.items {
		ids = append(ids, id)
		s.bytes -= it.Size
	}
	clear(s.items)
	clear(s.tries)
	s.next = ""
	if s.flight != nil {
		s.flight.cancel(ErrCancelled)
	}
	s.cancelled.Add(uint64(len(ids)))
	s.mu.Unlock()
	defer s.poke()
	if len(ids) == 0 {
		return 0, nil
	}
	s.log.Info("spool: every item cancelled by the user", "items", len(ids))
	var first error
	keep := func(err error) {
		if err != nil && !os.IsNotExist(err) && first == nil {
			first = fmt.Errorf("spool cancel all: %w", err)
		}
	}
	for _, id := range ids {
		keep(os.Remove(s.path(id, metaSuffix)))
	}
	keep(atomicfile.SyncDir(s.dir))
	for _, id := range ids {
		keep(os.Remove(s.path(id, dataSuffix)))
		keep(os.Remove(s.path(id, progSuffix)))
	}
	return len(ids), first
}

// RetryNow sends item id next: Deliver's backoff wait ends at once, the
// backoff starts over, and id goes before any other item. While paused it
// is how a user sends an item by hand (one attempt). An item already in
// flight is left as it is. It returns ErrNotFound when id is not queued.
func (s *Spool) RetryNow(id string) error {
	s.mu.Lock()
	if _, ok := s.items[id]; !ok {
		s.mu.Unlock()
		return fmt.Errorf("spool retry %s: %w", id, ErrNotFound)
	}
	if s.flight != nil && s.flight.id == id {
		s.mu.Unlock()
		return nil
	}
	s.next, s.resetBo = id, true
	if a := s.tries[id]; a != nil {
		a.nextAt = time.Time{}
	}
	s.mu.Unlock()
	s.poke()
	return nil
}

// Paused reports whether uploading is manual (paused).
func (s *Spool) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

// SetPaused switches uploading to manual (true) or auto (false) and keeps
// the choice in the spool's directory, written before it takes effect.
// Pausing stops the item in flight (its deliverer's context ends with
// ErrPaused; it stays queued and a resumable deliverer continues where it
// stopped), unless a user asked for that item while already paused.
func (s *Spool) SetPaused(paused bool) error {
	s.modeMu.Lock()
	defer s.modeMu.Unlock()
	s.mu.Lock()
	same, cfg := s.paused == paused, s.cfgManual
	s.mu.Unlock()
	if same {
		return nil
	}
	b, err := json.Marshal(modeRecord{Manual: paused, ConfigManual: cfg})
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(s.dir, modeFile), b, 0o600)
	}
	if err != nil {
		return fmt.Errorf("spool upload mode: %w", err)
	}
	s.mu.Lock()
	s.paused = paused
	if paused && s.flight != nil && !s.flight.manual {
		s.flight.cancel(ErrPaused)
	}
	s.mu.Unlock()
	if paused {
		s.log.Info("spool: uploading paused (manual)")
	} else {
		s.log.Info("spool: uploading resumed (auto)")
	}
	s.poke()
	return nil
}

// loadMode returns the mode to start in: the recorded choice when the
// config's mode is still the one it was made under, else the config's.
// Open calls it before the spool is shared.
func (s *Spool) loadMode() bool {
	b, err := os.ReadFile(filepath.Join(s.dir, modeFile))
	if err != nil {
		if !os.IsNotExist(err) {
			s.log.Warn("spool: upload mode unreadable; using the config's", "err", err)
		}
		return s.cfgManual
	}
	var m modeRecord
	if err := json.Unmarshal(b, &m); err != nil {
		s.log.Warn("spool: upload mode damaged; using the config's", "err", err)
		return s.cfgManual
	}
	if m.ConfigManual != s.cfgManual {
		// The config changed since the choice: it wins, and the choice is
		// forgotten (a later change back does not bring it back).
		if err := os.Remove(filepath.Join(s.dir, modeFile)); err != nil {
			s.log.Warn("spool: cannot forget the old upload mode", "err", err)
		}
		return s.cfgManual
	}
	return m.Manual
}

// poke makes Deliver look again: it ends a backoff wait and an idle wait.
func (s *Spool) poke() {
	s.mu.Lock()
	if s.sleepCancel != nil {
		s.sleepCancel()
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pick returns the item to send next: RetryNow's, else (unless paused) the
// oldest. manual says it was asked for while paused. A poke before pick
// read the state is consumed: what it asked for is in that state; one after
// it leaves its token for the next wait.
func (s *Spool) pick() (it Item, manual, ok bool) {
	select {
	case <-s.wake:
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := s.next; id != "" {
		s.next = ""
		if it, ok := s.items[id]; ok {
			return it, s.paused, true
		}
	}
	if s.paused {
		return Item{}, false, false
	}
	for id, cand := range s.items {
		if !ok || id < it.ID {
			it, ok = cand, true
		}
	}
	return it, false, ok
}

// triesOf returns id's delivery record, making it. Caller holds mu.
func (s *Spool) triesOf(id string) *attempt {
	a := s.tries[id]
	if a == nil {
		a = &attempt{}
		s.tries[id] = a
	}
	return a
}

// failed records a failed attempt of id and when it is tried again.
func (s *Spool) failed(id string, err error, wait time.Duration, manual bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.items[id]; !ok {
		return
	}
	a := s.triesOf(id)
	a.err = err.Error()
	if !manual {
		a.nextAt = s.clk.Now().Add(wait)
	}
}

// sleep waits d on the spool's clock, or less when poke ends it. reset says
// RetryNow asked for the backoff to start over. It fails only when ctx ends.
func (s *Spool) sleep(ctx context.Context, d time.Duration) (reset bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.sleepCancel = cancel
	s.mu.Unlock()
	select {
	case <-s.wake: // poked since pick, before the wait could be cut short
		cancel()
	default:
	}
	_ = s.clk.Sleep(sctx, d)
	s.mu.Lock()
	s.sleepCancel = nil
	reset, s.resetBo = s.resetBo, false
	for _, a := range s.tries {
		a.nextAt = time.Time{}
	}
	s.mu.Unlock()
	return reset, ctx.Err()
}
