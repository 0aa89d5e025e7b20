package frameio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// assetKind is the spool item kind of a Frame.io asset.
const assetKind = "frameio-asset"

// spooledDir is where watched files go once they are safely in the spool;
// they stay on user-accessible storage (§4.4) for manual upload.
const spooledDir = ".spooled"

// assetMeta is what the producer records with a spooled asset. Captured is
// the capture time, so offset is computed when the create is sent (§4.3).
type assetMeta struct {
	Name     string    `json:"name"`
	Filetype string    `json:"filetype"`
	Captured time.Time `json:"captured"`
	Source   string    `json:"source"`
}

// Work runs for the link's whole life: proactive token refresh, still
// capture, the watch directory and spool delivery. It owns those goroutines
// and returns after all of them stopped (ctx.Err()).
func (l *Link) Work(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	run(l.refreshLoop)
	if l.cfg.Upload.Sensor != "" && l.cfg.Upload.Every.D() > 0 {
		run(l.captureLoop)
	}
	if l.cfg.Upload.WatchDir != "" {
		run(l.watchLoop)
	}
	if l.deps.Spool != nil {
		run(func(ctx context.Context) { _ = l.deps.Spool.Deliver(ctx, l.deliver, l.opts.Deliver) })
	}
	<-ctx.Done()
	wg.Wait()
	return ctx.Err()
}

// refreshCheck bounds how long the refresh loop sleeps before looking again.
const refreshCheck = 5 * time.Minute

// refreshLoop refreshes the access token at ~80 % of its life (§1.5), so
// neither the socket nor an upload ever meets an expired token in the normal
// case. While unpaired it re-checks every NotPairedWait.
func (l *Link) refreshLoop(ctx context.Context) {
	bo := retry.New(retry.Policy{Min: 5 * time.Second, Max: 5 * time.Minute})
	for {
		wait := l.opts.NotPairedWait
		if due, ok := l.tokens.RefreshDue(); ok {
			wait = due.Sub(l.deps.Clock.Now())
		}
		// Re-evaluate at least every refreshCheck: a Pi's wall clock jumps
		// when NTP first syncs, which would make a long sleep wrong.
		if wait > 0 {
			if l.deps.Clock.Sleep(ctx, min(wait, refreshCheck)) != nil {
				return
			}
		}
		if due, ok := l.tokens.RefreshDue(); !ok || l.deps.Clock.Now().Before(due) {
			continue
		}
		_, err := l.access(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case retry.IsPermanent(err):
			return // logged by the token source; the session reports it
		case err != nil:
			if l.deps.Clock.Sleep(ctx, bo.NextFor(err)) != nil {
				return
			}
		default:
			bo.Reset()
		}
	}
}

// captureLoop takes one still every upload.every and spools it. While
// Frame.io says the channel is paused nothing is captured: those assets
// would be refused anyway (§2.3).
func (l *Link) captureLoop(ctx context.Context) {
	every := l.cfg.Upload.Every.D()
	var lastErr string
	for {
		if l.deps.Clock.Sleep(ctx, every) != nil {
			return
		}
		if l.Paused() {
			continue
		}
		err := l.captureOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if err.Error() != lastErr { // rate limit: log each new error once
				l.log.Warn("frameio: still capture failed", "sensor", l.cfg.Upload.Sensor, "err", err)
			}
			lastErr = err.Error()
			continue
		}
		if lastErr != "" {
			l.log.Info("frameio: still capture works again", "sensor", l.cfg.Upload.Sensor)
		}
		lastErr = ""
	}
}

// captureOnce subscribes for one frame only, so the camera runs just while a
// still is taken and no queue drops frames between captures.
func (l *Link) captureOnce(ctx context.Context) error {
	if l.deps.Hub == nil {
		return errors.New("capture: no sensor hub")
	}
	sub, err := l.deps.Hub.Subscribe(l.cfg.Upload.Sensor, sensors.SubscribeOptions{Queue: 1, Policy: sensors.DropOldest, Label: "frameio:" + l.deps.Name})
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer sub.Close()
	if c := sub.Info().Class; c != sensors.Still {
		return fmt.Errorf("capture: sensor %q gives %s, not stills", l.cfg.Upload.Sensor, c)
	}
	tctx, cancel := context.WithTimeout(ctx, l.opts.CaptureTimeout)
	defer cancel()
	var s sensors.Sample
	select {
	case <-tctx.Done():
		return fmt.Errorf("capture: no frame within %s", l.opts.CaptureTimeout)
	case s = <-sub.C():
	}
	now := l.deps.Clock.Now()
	meta := assetMeta{Name: fmt.Sprintf("%s_%s_%06d.jpg", l.cfg.Upload.Sensor, now.UTC().Format("20060102_150405"), s.Seq%1e6),
		Filetype: "image/jpeg", Captured: now, Source: "still"}
	if _, err := l.deps.Spool.Put(assetKind, meta, bytes.NewReader(s.Data)); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}

// fileState is a watched file's size and mtime at the last scan.
type fileState struct {
	size int64
	mod  time.Time
}

// watchLoop polls watch_dir: a file whose size and mtime did not change
// between two scans is finished; it is spooled and then moved to .spooled.
// Polling needs no inotify and copes with files copied in from SD cards.
func (l *Link) watchLoop(ctx context.Context) {
	dir := l.cfg.Upload.WatchDir
	seen := map[string]fileState{}
	queued := map[string]fileState{} // spooled but not yet moved aside
	reported := map[string]bool{}    // errors already logged, per file
	for {
		if l.deps.Clock.Sleep(ctx, l.opts.WatchEvery) != nil {
			return
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			if !reported[""] {
				reported[""] = true
				l.log.Warn("frameio: watch_dir unreadable", "dir", dir, "err", err)
			}
			continue
		}
		delete(reported, "")
		now := map[string]fileState{}
		for _, e := range ents {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasPrefix(name, ".") {
				continue
			}
			fi, err := e.Info()
			if err != nil || fi.Size() == 0 {
				continue
			}
			st := fileState{size: fi.Size(), mod: fi.ModTime()}
			now[name] = st
			if prev, ok := seen[name]; !ok || prev != st {
				continue // new or still growing
			}
			if q, ok := queued[name]; ok && q == st {
				err = l.moveAside(filepath.Join(dir, name))
			} else {
				err = l.spoolFile(filepath.Join(dir, name), fi)
				if errors.Is(err, errNotMoved) {
					queued[name] = st
				}
			}
			if err != nil {
				if !reported[name] {
					reported[name] = true
					l.log.Warn("frameio: cannot queue file; will retry", "file", name, "err", err)
				}
				continue
			}
			delete(reported, name)
			delete(queued, name)
			delete(now, name)
		}
		seen = now
		for name := range queued {
			if _, ok := now[name]; !ok {
				delete(queued, name)
			}
		}
		for name := range reported { // forget files that went away
			if _, ok := now[name]; !ok && name != "" {
				delete(reported, name)
			}
		}
	}
}

func (l *Link) spoolFile(path string, fi os.FileInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ft := mime.TypeByExtension(strings.ToLower(filepath.Ext(path)))
	if i := strings.IndexByte(ft, ';'); i >= 0 {
		ft = ft[:i]
	}
	if ft == "" {
		ft = "application/octet-stream"
	}
	meta := assetMeta{Name: filepath.Base(path), Filetype: ft, Captured: fi.ModTime(), Source: "watch"}
	if _, err := l.deps.Spool.Put(assetKind, meta, f); err != nil {
		return err
	}
	l.log.Info("frameio: file queued", "file", filepath.Base(path), "bytes", fi.Size())
	// Queued durably; move it aside so it is not queued again. A crash
	// between the two steps uploads the file twice rather than never.
	if err := l.moveAside(path); err != nil {
		return fmt.Errorf("%w: %w", errNotMoved, err)
	}
	return nil
}

// errNotMoved: the file is in the spool but could not be moved aside; the
// watcher must not queue it again.
var errNotMoved = errors.New("queued, but not moved aside")

func (l *Link) moveAside(path string) error {
	dst := filepath.Join(filepath.Dir(path), spooledDir)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	return os.Rename(path, filepath.Join(dst, filepath.Base(path)))
}
