package frameio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/timesync"
)

// spooledDir is where watched files go once they are safely in the spool;
// they stay on user-accessible storage (docs/protocols/frameio-c2c.md §5.4)
// for manual upload.
const spooledDir = ".spooled"

// errNotPlainFile: a watched entry is not a plain file of its own (a
// symbolic link, a FIFO, a second name of another file, or it was swapped
// between the scan and the open). It is skipped, never read.
var errNotPlainFile = errors.New("not a plain file")

// errChanged: the file changed while it was copied; the copy is dropped and
// the file is taken once it is stable again.
var errChanged = errors.New("changed while being queued")

// errNotMoved: the file is in the spool but could not be moved aside; the
// watcher must not queue it again.
var errNotMoved = errors.New("queued, but not moved aside")

// fileState is a watched file's size and mtime at the last scan.
type fileState struct {
	size int64
	mod  time.Time
}

// watcher is the state of watchLoop's scans. It is owned by that goroutine.
type watcher struct {
	l        *Link
	dir      string
	seen     map[string]fileState // every file at the last scan
	queued   map[string]fileState // spooled but not yet moved aside
	reported map[string]bool      // errors already logged, per file ("" for the directory)
	tooBig   map[string]fileState // files skipped for the spool's room, as logged
	// unwritable is why .spooled cannot be used ("" when it can), as
	// logged and shown; nothing is queued meanwhile.
	unwritable string
	// openSpooled is openSpooled; tests replace it to fail like a
	// read-only file system, which root (the CI user) cannot be denied.
	openSpooled func(dir *os.File, now time.Time) (*os.File, *setAside, error)
}

func newWatcher(l *Link, dir string) *watcher {
	return &watcher{l: l, dir: dir, seen: map[string]fileState{}, queued: map[string]fileState{},
		reported: map[string]bool{}, tooBig: map[string]fileState{}, openSpooled: openSpooled}
}

// watchLoop polls watch_dir: a file whose size and mtime did not change
// between two scans is finished; it is spooled and then moved to .spooled.
// Polling needs no inotify and copes with files copied in from SD cards.
//
// The directory is hostile ground (see watchfs_linux.go): only plain files
// are read, opened without following links and checked to be the file the
// scan saw; .spooled must be the agent's own directory. A file larger than
// the spool's free room is not copied (that was a full copy, refused, every
// scan); it is reported once and taken when it fits. While .spooled cannot
// be made (a read-only directory, as the shipped unit makes everything but
// its own directories) nothing is queued: a file that cannot be moved aside
// would be queued and uploaded again after every restart.
func (l *Link) watchLoop(ctx context.Context) {
	w := newWatcher(l, l.cfg.Upload.WatchDir)
	defer l.deps.Stats.SetDetail(watchDetail, "")
	for {
		if l.deps.Clock.Sleep(ctx, l.opts.WatchEvery) != nil {
			return
		}
		w.scan()
	}
}

// watchDetail is the /status detail naming files the spool has no room for.
const watchDetail = "watch_dir"

// scan looks at the directory once.
func (w *watcher) scan() {
	l := w.l
	d, err := os.Open(w.dir)
	var ents []os.DirEntry
	if err == nil {
		ents, err = d.ReadDir(-1)
		defer d.Close()
	}
	if err != nil {
		if !w.reported[""] {
			w.reported[""] = true
			l.log.Warn("frameio: watch_dir unreadable", "dir", w.dir, "err", err)
		}
		return
	}
	delete(w.reported, "")
	// .spooled is opened at the first file to take and used for every move
	// of this scan; until it can be, nothing is taken.
	var to *os.File
	var toErr error
	spooled := func() (*os.File, error) {
		if to == nil && toErr == nil {
			to, toErr = w.spooledDir(d)
		}
		return to, toErr
	}
	defer func() {
		if to != nil {
			to.Close()
		}
	}()
	now := map[string]fileState{}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := e.Info() // lstat
		if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
			continue
		}
		st := fileState{size: fi.Size(), mod: fi.ModTime()}
		now[name] = st
		if prev, ok := w.seen[name]; !ok || prev != st {
			continue // new or still growing
		}
		dst, derr := spooled()
		if derr != nil {
			continue // reported by spooledDir
		}
		if q, ok := w.queued[name]; ok && q == st {
			err = moveInto(d, dst, name)
		} else if w.fits(name, st) {
			err = w.spoolFile(d, dst, name, fi)
			if errors.Is(err, errNotMoved) {
				w.queued[name] = st
			}
		} else {
			continue
		}
		if errors.Is(err, errChanged) {
			delete(now, name) // seen anew next scan
			continue
		}
		if err != nil {
			if !w.reported[name] {
				w.reported[name] = true
				l.log.Warn("frameio: cannot queue file; will retry", "file", name, "err", err)
			}
			continue
		}
		delete(w.reported, name)
		delete(w.queued, name)
		delete(now, name)
	}
	w.seen = now
	for _, m := range []map[string]fileState{w.queued, w.tooBig} {
		for name := range m {
			if _, ok := now[name]; !ok {
				delete(m, name)
			}
		}
	}
	for name := range w.reported { // forget files that went away
		if _, ok := now[name]; !ok && name != "" {
			delete(w.reported, name)
		}
	}
	w.showTooBig()
}

// fits reports whether a finished file fits in the spool's free room now.
// A file that does not is logged once per size and mtime and shown in
// /status, and not copied; it is taken on a later scan once the spool has
// room (checking costs a stat, not a copy).
func (w *watcher) fits(name string, st fileState) bool {
	sp := w.l.deps.Spool
	room := sp.Room()
	if st.size <= room {
		delete(w.tooBig, name)
		return true
	}
	if prev, ok := w.tooBig[name]; !ok || prev != st {
		w.tooBig[name] = st
		why := "waiting for room"
		if st.size > sp.MaxBytes() {
			why = "larger than the whole spool (spool.max_size); it will never be uploaded from here"
		}
		w.l.log.Warn("frameio: watched file too large for the spool; not queued", "file", name,
			"bytes", st.size, "spool_free", room, "spool_max", sp.MaxBytes(), "why", why)
	}
	return false
}

// showTooBig sets the /status detail: why nothing is queued, or the files
// skipped for room.
func (w *watcher) showTooBig() {
	if w.unwritable != "" {
		w.l.deps.Stats.SetDetail(watchDetail, w.unwritable)
		return
	}
	if len(w.tooBig) == 0 {
		w.l.deps.Stats.SetDetail(watchDetail, "")
		return
	}
	names := make([]string, 0, len(w.tooBig))
	for n := range w.tooBig {
		names = append(names, n)
	}
	sort.Strings(names)
	msg := fmt.Sprintf("%s too large for the spool (%d bytes)", names[0], w.tooBig[names[0]].size)
	if len(names) > 1 {
		msg += fmt.Sprintf(" and %d more", len(names)-1)
	}
	w.l.deps.Stats.SetDetail(watchDetail, msg)
}

// fileStamp is the capture stamp of a file last written at mtime: now's
// stamp taken back by the file's age on the wall clock, when the file was
// written in this boot (the age is within boottime). The age is a difference
// of two wall readings seconds apart (a finished file is queued at the next
// scan), so a clock that is wrong by months still gives it right; only a
// step of the clock between the write and the scan skews it. A file from
// before this boot, or dated in the future (another device's clock), gets
// no stamp and keeps its modification time.
func (l *Link) fileStamp(mtime time.Time) *timesync.Stamp {
	now := l.deps.Time.Now()
	d := now.Wall.Sub(mtime)
	if d < 0 || d > now.Boot {
		return nil
	}
	st := now.Back(d)
	return &st
}

// spoolFile copies the finished file name (seen by the scan as seen) into
// the spool and moves it into to (.spooled).
func (w *watcher) spoolFile(d, to *os.File, name string, seen os.FileInfo) error {
	l := w.l
	f, fi, err := openWatched(d, name, seen)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi.Size() != seen.Size() || !fi.ModTime().Equal(seen.ModTime()) {
		return errChanged
	}
	ft := mime.TypeByExtension(strings.ToLower(filepath.Ext(name)))
	if i := strings.IndexByte(ft, ';'); i >= 0 {
		ft = ft[:i]
	}
	if ft == "" {
		ft = "application/octet-stream"
	}
	meta := assetMeta{Name: name, Filetype: ft, Captured: fi.ModTime(), Source: "watch"}
	it, err := l.deps.Spool.PutStamped(assetKind, meta, l.fileStamp(fi.ModTime()), io.LimitReader(f, fi.Size()))
	if err != nil {
		return err
	}
	if after, err := f.Stat(); err != nil || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		_ = l.deps.Spool.Remove(it.ID) // written to while we copied: not the finished file
		return errChanged
	}
	l.log.Info("frameio: file queued", "file", name, "bytes", fi.Size())
	// Queued durably; move it aside so it is not queued again. A crash
	// between the two steps uploads the file twice rather than never.
	if err := moveInto(d, to, name); err != nil {
		return fmt.Errorf("%w: %w", errNotMoved, err)
	}
	return nil
}

// spooledDir opens .spooled in the open watch directory d (see
// openSpooled), logging a planted one that was renamed aside, and records
// in w.unwritable why it cannot be used, logged when that changes.
func (w *watcher) spooledDir(d *os.File) (*os.File, error) {
	to, aside, err := w.openSpooled(d, w.l.deps.Clock.Now())
	if aside != nil {
		w.l.log.Warn("frameio: watch_dir/.spooled was not the agent's own directory; renamed it and made a new one",
			"dir", w.dir, "renamed_to", aside.name, "why", aside.why)
	}
	if err != nil {
		why := fmt.Sprintf("files not queued: they cannot be moved aside (%v)", err)
		if why != w.unwritable {
			w.unwritable = why
			w.l.log.Error("frameio: watch_dir is not writable by the agent; no file is queued until it is "+
				"(under the shipped systemd unit use /var/lib/edge-agent/watch or add ReadWritePaths= in a drop-in)",
				"dir", w.dir, "err", err)
		}
		return nil, err
	}
	if w.unwritable != "" {
		w.unwritable = ""
		w.l.log.Info("frameio: watch_dir is writable again; queuing files", "dir", w.dir)
	}
	return to, nil
}

// setAside is an untrusted .spooled renamed aside inside the watch dir.
type setAside struct {
	name string
	why  error
}
