// Package spool is the agent's durable upload queue. Every captured item that
// must reach a cloud (a signed sample, an asset, a record) is written here
// before any upload is tried, and removed only after the peer acknowledged it.
// A crash at any point leaves either the complete item or nothing: data and
// metadata are each written to a temp file, fsynced, renamed into place, and
// the directory is fsynced; the metadata file is written last and marks the
// item as committed. It is never rewritten.
//
// The deliverer's resumable state (finished upload parts) lives in a third
// file per item, a log of JSON lines: SetProgress writes its first line,
// AppendProgress adds one line with one fsync and no rename. A board writes to
// an SD card, where each fsync costs a journal commit and flash wears by the
// block: a finished part costs a few bytes appended, not a rewrite of the
// item's metadata through a temp file, a rename and a directory fsync (see
// scripts/wear.sh). A line cut short by a crash is dropped when the spool
// opens.
//
// The spool has a size bound. When full, Put refuses the new item with
// ErrFull (counted in Stats.Refused and logged by the caller): what is already
// queued is never evicted, because it is data someone captured on purpose.
//
// Each item carries the Stamp of its capture (internal/timesync) when the
// spool has a time source or the producer gives one: a board without a
// real-time clock may capture before NTP has set the wall clock, and the
// stamp lets the deliverer send the capture's true age or corrected time.
// Items written before stamps existed have none and stay readable.
//
// The queue can be steered while it runs (control.go): List shows each item
// with its delivery attempts, last error and, for the item in flight, how far
// it got; Cancel drops an item durably (the item in flight too: its delivery
// is stopped) and counts it; RetryNow sends an item at once instead of
// waiting out the backoff; SetPaused switches uploading to manual (nothing
// is sent unless RetryNow asks for it) and back to auto. The mode is kept in
// the spool's directory, so it survives a restart; Options.Manual is the
// config's choice, which wins when it changed since.
//
// Concurrency: all methods are safe for concurrent use. Deliver is meant to
// have one caller per spool (the owning link's worker).
package spool

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/internal/timesync"
)

// ErrFull is returned by Put when the item would exceed the spool's bound.
var ErrFull = errors.New("spool full")

// Item is one queued upload. Meta is the producer's description (headers,
// file name…); Progress and Updates are the deliverer's resumable state:
// the record SetProgress last wrote and the ones AppendProgress added since,
// oldest first.
// Stamp is the capture's time (nil for an item queued without a time source,
// or before stamps existed): resolve it with the link's timesync.Sync rather
// than trusting Created, which is the wall clock at Put, right or not.
type Item struct {
	ID      string          `json:"id"`
	Kind    string          `json:"kind"`
	Created time.Time       `json:"created"`
	Stamp   *timesync.Stamp `json:"stamp,omitempty"`
	Size    int64           `json:"size"`
	Meta    json.RawMessage `json:"meta,omitempty"`
	// Progress is in the metadata file only for items queued before the
	// progress log existed; the log's first line replaces it.
	Progress json.RawMessage   `json:"progress,omitempty"`
	Updates  []json.RawMessage `json:"-"`
}

// Options configures a spool.
type Options struct {
	// MaxBytes bounds the total data size; 0 means 256 MiB.
	MaxBytes int64
	Logger   *slog.Logger
	Clock    clock.Clock
	// Time stamps every item Put queues (PutStamped takes the producer's
	// own stamp instead); nil stores no stamp.
	Time *timesync.Sync
	// Manual is the config's upload mode (spool.upload: manual): items are
	// queued but not sent until RetryNow or SetPaused(false). The mode the
	// console last set, kept in the directory, wins over it until the
	// config's value changes.
	Manual bool
}

// Stats are the spool's counters.
type Stats struct {
	Items     int
	Bytes     int64
	Refused   uint64 // Put calls refused because the spool was full
	Delivered uint64 // items acknowledged by the peer and removed
	Rejected  uint64 // items the peer refused for good and that were dropped
	Retries   uint64 // failed delivery attempts that will be retried
	Cancelled uint64 // items a user cancelled (Cancel, CancelAll) and that were dropped
}

// Spool is a directory of committed items.
type Spool struct {
	dir string
	max int64
	log *slog.Logger
	clk clock.Clock
	ts  *timesync.Sync

	mu       sync.Mutex
	items    map[string]Item
	bytes    int64
	lastNano int64 // newest id's time part

	// Guarded by mu: the delivery state control.go reads and steers.
	paused      bool
	cfgManual   bool                // Options.Manual
	flight      *flight             // the item Deliver is sending, if any
	tries       map[string]*attempt // delivery record per item, since Open
	next        string              // RetryNow's item, sent before any other
	resetBo     bool                // RetryNow asked: the backoff starts over
	sleepCancel context.CancelFunc  // ends Deliver's backoff wait early

	progMu sync.Mutex // serializes writes to the progress logs and removals
	modeMu sync.Mutex // serializes SetPaused's writes of the mode file

	notify                                          chan struct{}
	wake                                            chan struct{} // RetryNow, SetPaused, Cancel: Deliver looks again
	refused, delivered, rejected, retrys, cancelled atomic.Uint64
}

const (
	dataSuffix = ".data"
	metaSuffix = ".meta"
	progSuffix = ".progress"
	tmpPrefix  = atomicfile.TempPrefix
)

// Open opens (creating 0700 if needed) the spool in dir, recovering the
// committed items and deleting anything a crash left half-written.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, err)
	}
	s := &Spool{dir: dir, max: opts.MaxBytes, log: opts.Logger, clk: opts.Clock, ts: opts.Time,
		items: map[string]Item{}, notify: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		tries: map[string]*attempt{}, cfgManual: opts.Manual}
	if err := s.recover(); err != nil {
		return nil, err
	}
	s.paused = s.loadMode()
	return s, nil
}

func (s *Spool) recover() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: read %s: %w", s.dir, err)
	}
	datas, progs := map[string]bool{}, map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			_ = os.Remove(filepath.Join(s.dir, name)) // a crash mid-write
		case strings.HasSuffix(name, dataSuffix):
			datas[strings.TrimSuffix(name, dataSuffix)] = true
		case strings.HasSuffix(name, progSuffix):
			progs[strings.TrimSuffix(name, progSuffix)] = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, metaSuffix) || strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		id := strings.TrimSuffix(name, metaSuffix)
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		var it Item
		if err == nil {
			err = json.Unmarshal(b, &it)
		}
		if err != nil || it.ID != id || !datas[id] {
			// Unreadable metadata cannot be delivered correctly; keep the data
			// aside for a human rather than deleting captured bytes.
			s.log.Error("spool: damaged item set aside", "id", id, "err", err)
			_ = os.Rename(filepath.Join(s.dir, name), filepath.Join(s.dir, name+".damaged"))
			continue
		}
		if progs[id] {
			if err := s.readProgress(&it); err != nil {
				// The item is intact; only its resume point is lost: the
				// deliverer starts it over.
				s.log.Error("spool: progress log unreadable; the item starts over", "id", id, "err", err)
				it.Progress, it.Updates = nil, nil
			}
			delete(progs, id)
		}
		s.items[id] = it
		s.bytes += it.Size
		delete(datas, id)
		if ns, err := strconv.ParseInt(strings.SplitN(id, "-", 2)[0], 10, 64); err == nil && ns > s.lastNano {
			s.lastNano = ns
		}
	}
	for id := range datas { // data whose metadata never got committed
		_ = os.Remove(filepath.Join(s.dir, id+dataSuffix))
	}
	for id := range progs { // the rest of an item whose removal was cut short
		_ = os.Remove(filepath.Join(s.dir, id+progSuffix))
	}
	return atomicfile.SyncDir(s.dir)
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// newID returns a time-ordered unique id: it sorts by creation and serves as
// the idempotency key peers deduplicate on.
// The time part is made strictly increasing, so two items created in the
// same clock tick still sort in creation order.
func (s *Spool) newID() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	s.mu.Lock()
	ns := s.clk.Now().UnixNano()
	if ns <= s.lastNano {
		ns = s.lastNano + 1
	}
	s.lastNano = ns
	s.mu.Unlock()
	return fmt.Sprintf("%019d-%s", ns, hex.EncodeToString(r[:]))
}

// Put writes body as a new item of kind with meta (marshalled to JSON) and
// returns it once it is durable, stamped now when the spool has a time
// source. It returns ErrFull (wrapped) when the bound would be exceeded;
// nothing is written then.
func (s *Spool) Put(kind string, meta any, body io.Reader) (Item, error) {
	var st *timesync.Stamp
	if s.ts != nil {
		now := s.ts.Now()
		st = &now
	}
	return s.PutStamped(kind, meta, st, body)
}

// PutStamped is Put with the capture's own stamp, for a producer whose
// capture happened before it reached the spool (a file written earlier); a
// nil st stores none.
func (s *Spool) PutStamped(kind string, meta any, st *timesync.Stamp, body io.Reader) (Item, error) {
	p, err := s.Create()
	if err != nil {
		return Item{}, fmt.Errorf("spool put %s: %w", kind, err)
	}
	defer p.Abort() // a no-op once Commit ran
	room := s.room()
	n, err := io.Copy(p.f, io.LimitReader(body, room+1))
	if err == nil && n > room {
		err = ErrFull
	}
	if err != nil {
		if errors.Is(err, ErrFull) {
			s.refused.Add(1)
		}
		return Item{}, fmt.Errorf("spool put %s: %w", kind, err)
	}
	return p.Commit(kind, meta, st)
}

// Pending is an item's data being written by its producer, straight into
// the spool's directory: a capture too long to hold in memory (a recording)
// is written to disk once, where a temp file elsewhere and Put would write
// it twice. Commit makes it an item; Abort (or a crash: Open deletes what is
// left) drops it.
//
// Concurrency: one goroutine owns a Pending.
type Pending struct {
	s    *Spool
	f    *os.File
	done bool
}

// Create starts a pending item.
func (s *Spool) Create() (*Pending, error) {
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("spool create: %w", err)
	}
	return &Pending{s: s, f: f}, nil
}

// File is where the producer writes the data (it may seek and WriteAt). It
// is closed by Commit or Abort.
func (p *Pending) File() *os.File { return p.f }

// Commit makes the data written so far (the file's size) a durable item of
// kind with meta and the capture stamp st (nil: none). It fails with ErrFull
// (wrapped) when the data does not fit in the spool's bound, and then, as
// on any error, the data is dropped.
func (p *Pending) Commit(kind string, meta any, st *timesync.Stamp) (Item, error) {
	if p.done {
		return Item{}, fmt.Errorf("spool put %s: already committed or aborted", kind)
	}
	p.done = true
	s, tmp := p.s, p.f.Name()
	fail := func(err error) (Item, error) {
		_ = os.Remove(tmp)
		return Item{}, fmt.Errorf("spool put %s: %w", kind, err)
	}
	mb, err := json.Marshal(meta)
	var fi os.FileInfo
	if err == nil {
		fi, err = p.f.Stat()
	}
	if err == nil {
		err = p.f.Sync()
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	n := fi.Size()
	it := Item{ID: s.newID(), Kind: kind, Created: s.clk.Now().UTC(), Stamp: st, Size: n, Meta: mb}
	s.mu.Lock()
	if s.bytes+n > s.max {
		s.mu.Unlock()
		s.refused.Add(1)
		return fail(ErrFull)
	}
	s.bytes += n // reserve before the slow renames
	s.mu.Unlock()
	if err := os.Rename(tmp, s.path(it.ID, dataSuffix)); err != nil {
		s.unreserve(n)
		return fail(err)
	}
	if err := s.writeMeta(it); err != nil {
		_ = os.Remove(s.path(it.ID, dataSuffix))
		s.unreserve(n)
		return fail(err)
	}
	s.mu.Lock()
	s.items[it.ID] = it
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return it, nil
}

// Abort drops the pending data; a no-op after Commit or Abort.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	p.f.Close()
	_ = os.Remove(p.f.Name())
}

// Room is how many more bytes the spool takes now. A producer with a large
// item checks it first rather than copy the item only to be refused.
func (s *Spool) Room() int64 { return s.room() }

// MaxBytes is the spool's bound on the data it holds.
func (s *Spool) MaxBytes() int64 { return s.max }

func (s *Spool) room() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.max - s.bytes; r > 0 {
		return r
	}
	return 0
}

func (s *Spool) unreserve(n int64) {
	s.mu.Lock()
	s.bytes -= n
	s.mu.Unlock()
}

func (s *Spool) path(id, suffix string) string { return filepath.Join(s.dir, id+suffix) }

// writeMeta commits it's metadata atomically and fsyncs the directory.
func (s *Spool) writeMeta(it Item) error {
	b, err := json.Marshal(it)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path(it.ID, metaSuffix), b, 0o600); err != nil {
		return err
	}
	return nil
}

// Open returns the item's data for reading (it supports ReadAt and Seek).
func (s *Spool) Open(id string) (*os.File, error) {
	f, err := os.Open(s.path(id, dataSuffix))
	if err != nil {
		return nil, fmt.Errorf("spool open %s: %w", id, err)
	}
	return f, nil
}

// Get returns the item with id.
func (s *Spool) Get(id string) (Item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[id]
	return it, ok
}

// SetProgress durably records the deliverer's resumable state for id, so a
// restart resumes (for example, the asset an upload created). It replaces
// what the item's progress log held: the log is truncated to this one line.
// A nil progress records "null", "start over".
func (s *Spool) SetProgress(id string, progress any) error {
	return s.writeProgress(id, progress, false)
}

// AppendProgress durably adds one record to id's progress log (one line
// appended and fsynced; nothing rewritten): the deliverer's small, frequent
// steps, such as one finished part, after a SetProgress that recorded what
// they belong to. It fails for an item with no SetProgress yet.
func (s *Spool) AppendProgress(id string, update any) error {
	return s.writeProgress(id, update, true)
}

func (s *Spool) writeProgress(id string, v any, add bool) error {
	op := "spool progress"
	if add {
		op = "spool append progress"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s.progMu.Lock()
	defer s.progMu.Unlock()
	s.mu.Lock()
	it, ok := s.items[id]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s %s: no such item", op, id)
	}
	path := s.path(id, progSuffix)
	_, statErr := os.Lstat(path)
	flags, lines := os.O_WRONLY|os.O_CREATE|os.O_TRUNC, [][]byte{b}
	if add {
		switch {
		case it.Progress == nil:
			return fmt.Errorf("%s %s: no progress recorded to add to", op, id)
		case errors.Is(statErr, os.ErrNotExist):
			// Progress from the metadata file (an item queued before the
			// log existed): the log starts with it.
			lines = [][]byte{it.Progress, b}
		default:
			flags = os.O_WRONLY | os.O_APPEND
		}
	}
	if err := writeLines(path, flags, lines); err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	if errors.Is(statErr, os.ErrNotExist) { // a new name: make it durable
		if err := atomicfile.SyncDir(s.dir); err != nil {
			return fmt.Errorf("%s %s: %w", op, id, err)
		}
	}
	if add {
		it.Updates = append(it.Updates, b)
	} else {
		it.Progress, it.Updates = b, nil
	}
	s.mu.Lock()
	if _, still := s.items[id]; still {
		s.items[id] = it
	}
	s.mu.Unlock()
	return nil
}

// writeLines writes each of lines and a newline, in one write, to path
// opened with flags (0600) and fsyncs it.
func writeLines(path string, flags int, lines [][]byte) error {
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	var buf []byte
	for _, l := range lines {
		buf = append(append(buf, l...), '\n')
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readProgress loads it's progress log: the first line is Progress, the
// others Updates. A last line without its newline (a crash mid-append) is cut
// off the file, so the next append starts a clean line.
func (s *Spool) readProgress(it *Item) error {
	path := s.path(it.ID, progSuffix)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	whole := bytes.LastIndexByte(b, '\n') + 1
	if whole < len(b) {
		if err := os.Truncate(path, int64(whole)); err != nil {
			return err
		}
		s.log.Warn("spool: a progress record cut short by a crash was dropped", "id", it.ID)
	}
	lines := bytes.Split(b[:whole], []byte{'\n'})
	lines = lines[:len(lines)-1] // after the last newline
	if len(lines) == 0 {
		it.Progress = nil // cut short before its first line ended: nothing recorded
		return nil
	}
	for i, l := range lines {
		if !json.Valid(l) {
			return fmt.Errorf("progress line %d is not JSON", i+1)
		}
	}
	it.Progress = lines[0]
	it.Updates = nil
	for _, l := range lines[1:] {
		it.Updates = append(it.Updates, l)
	}
	return nil
}

// Remove deletes an item after its peer acknowledged it. The metadata goes
// first, so a crash in between leaves only orphan data that Open deletes.
func (s *Spool) Remove(id string) error {
	_, err := s.remove(id, nil)
	return err
}

// remove is Remove, reporting whether the item was still queued, and
// adding one to counted (when not nil) in the same critical section that
// forgets the item, so Stats never shows an item gone but not yet counted.
// It holds progMu, so a deliverer's progress write either lands before (and
// is deleted with the item) or finds the item gone.
func (s *Spool) remove(id string, counted *atomic.Uint64) (bool, error) {
	s.progMu.Lock()
	defer s.progMu.Unlock()
	s.mu.Lock()
	ok := s.forgetLocked(id, counted)
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, s.removeFiles(id)
}

// forgetLocked drops id from the queue and adds one to counted (when not
// nil), reporting whether it was queued. Caller holds mu.
func (s *Spool) forgetLocked(id string, counted *atomic.Uint64) bool {
	it, ok := s.items[id]
	if !ok {
		return false
	}
	delete(s.items, id)
	delete(s.tries, id)
	s.bytes -= it.Size
	if counted != nil {
		counted.Add(1)
	}
	return true
}

// removeFiles deletes a forgotten item's files: the metadata first and the
// directory fsynced, so a crash in between leaves only orphan data that Open
// deletes. Caller holds progMu.
func (s *Spool) removeFiles(id string) error {
	if err := os.Remove(s.path(id, metaSuffix)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("spool remove %s: %w", id, err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return fmt.Errorf("spool remove %s: %w", id, err)
	}
	for _, suffix := range []string{dataSuffix, progSuffix} {
		if err := os.Remove(s.path(id, suffix)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("spool remove %s: %w", id, err)
		}
	}
	return nil
}

// Items returns the queued items, oldest first.
func (s *Spool) Items() []Item {
	s.mu.Lock()
	out := make([]Item, 0, len(s.items))
	for _, it := range s.items {
		out = append(out, it)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Stats returns the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	n, b := len(s.items), s.bytes
	s.mu.Unlock()
	return Stats{Items: n, Bytes: b, Refused: s.refused.Load(), Delivered: s.delivered.Load(),
		Rejected: s.rejected.Load(), Retries: s.retrys.Load(), Cancelled: s.cancelled.Load()}
}

// Notify returns a channel that receives after each Put (coalesced).
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// DeliverFunc uploads one item. body is positioned at offset 0 and supports
// ReadAt. It returns nil once the peer acknowledged the item; an error
// wrapped with retry.Permanent when the peer refused it for good (the item is
// dropped and counted); any other error is retried with backoff.
//
// ctx ends when the link stops, and also when a user cancels the item
// (context.Cause(ctx) is ErrCancelled: it is already gone from the spool) or
// pauses uploading (ErrPaused: it stays queued and resumes later); the
// function must return promptly then, and whatever it returns is not counted
// as a failed attempt. A deliverer that reads body with ReadAt reports how far
// it got with ReportSent.
type DeliverFunc func(ctx context.Context, it Item, body *os.File) error

// Deliver runs until ctx ends, delivering items oldest first. A failed item is
// retried with backoff (honouring retry.RetryAfter) before the next one is
// tried, so the peer sees items in capture order; RetryNow cuts the wait
// short or sends a chosen item first. While paused (manual mode) it sends
// only what RetryNow asks for, one attempt per request. It returns ctx.Err().
func (s *Spool) Deliver(ctx context.Context, deliver DeliverFunc, policy retry.Policy) error {
	bo := retry.New(policy)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		it, manual, ok := s.pick()
		if !ok {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.notify:
			case <-s.wake:
			}
			continue
		}
		err, cause := s.deliverOne(ctx, deliver, it, manual)
		switch {
		case errors.Is(cause, ErrCancelled):
			// Cancel removed and counted it.
			if err == nil {
				s.log.Info("spool: a cancelled item had reached the peer already", "id", it.ID, "kind", it.Kind)
			}
		case errors.Is(cause, ErrPaused):
			s.log.Info("spool: upload paused; the item stays queued", "id", it.ID, "kind", it.Kind)
		case err == nil:
			bo.Reset()
			if _, err := s.remove(it.ID, &s.delivered); err != nil {
				s.log.Error("spool: remove delivered item", "err", err)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case retry.IsPermanent(err):
			bo.Reset()
			s.rejected.Add(1)
			s.log.Warn("spool: peer refused item; dropped", "id", it.ID, "kind", it.Kind, "err", err)
			if err := s.Remove(it.ID); err != nil {
				s.log.Error("spool: remove refused item", "err", err)
			}
		default:
			s.retrys.Add(1)
			wait := bo.NextFor(err)
			s.failed(it.ID, err, wait, manual)
			if manual {
				// One attempt per request: the item waits for the next.
				s.log.Warn("spool: delivery failed; uploads are manual, it waits to be sent again", "id", it.ID, "kind", it.Kind, "err", err)
				continue
			}
			s.log.Warn("spool: delivery failed; will retry", "id", it.ID, "kind", it.Kind, "err", err, "retry_in", wait.Round(time.Millisecond))
			reset, err := s.sleep(ctx, wait)
			if err != nil {
				return err
			}
			if reset {
				bo.Reset()
			}
		}
	}
}

// deliverOne sends it as the item in flight, under a context Cancel and
// SetPaused can end with their cause. It returns deliver's error and that
// cause (nil when neither ended it).
func (s *Spool) deliverOne(ctx context.Context, deliver DeliverFunc, it Item, manual bool) (error, error) {
	f, err := s.Open(it.ID)
	if err != nil {
		if _, ok := s.Get(it.ID); !ok {
			return nil, ErrCancelled // cancelled between pick and Open
		}
		return err, nil
	}
	defer f.Close()
	ictx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.mu.Lock()
	if _, ok := s.items[it.ID]; !ok {
		s.mu.Unlock()
		return nil, ErrCancelled
	}
	s.flight = &flight{id: it.ID, body: f, started: s.clk.Now(), sent: -1, cancel: cancel, manual: manual}
	a := s.triesOf(it.ID)
	a.n++
	a.lastAt, a.nextAt = s.flight.started, time.Time{}
	s.mu.Unlock()

	err = deliver(ictx, it, f)

	s.mu.Lock()
	s.flight = nil
	s.mu.Unlock()
	var cause error
	if c := context.Cause(ictx); errors.Is(c, ErrCancelled) || errors.Is(c, ErrPaused) {
		cause = c
	}
	return err, cause
}
