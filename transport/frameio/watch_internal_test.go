package frameio

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// TestTrustWatchOpenChecksTheOpenedFile: the scan lstat's an entry, then
// opens it. Whoever writes into the watch directory can swap the entry in
// between; on main os.Open followed a symbolic link put there, and a 0600
// secret file was uploaded (4 of 4 runs). spoolFile gets the scan's lstat
// result, as in the scan, after the swap: it must refuse what it opened
// and spool nothing.
func TestTrustWatchOpenChecksTheOpenedFile(t *testing.T) {
	swaps := []struct {
		name string
		swap func(t *testing.T, dir, entry, secret string)
	}{
		{"symbolic link to a secret", func(t *testing.T, dir, entry, secret string) {
			mustDo(t, os.Remove(filepath.Join(dir, entry)))
			mustDo(t, os.Symlink(secret, filepath.Join(dir, entry)))
		}},
		{"another file of the same size", func(t *testing.T, dir, entry, secret string) {
			// Renamed over the entry, so the new inode exists before the
			// old one is freed and cannot reuse its number.
			mustDo(t, os.WriteFile(filepath.Join(dir, ".new"), []byte("other clip"), 0o644))
			mustDo(t, os.Rename(filepath.Join(dir, ".new"), filepath.Join(dir, entry)))
		}},
		{"hard link to a secret", func(t *testing.T, dir, entry, secret string) {
			mustDo(t, os.Remove(filepath.Join(dir, entry)))
			mustDo(t, os.Link(secret, filepath.Join(dir, entry)))
		}},
		{"FIFO (must not block)", func(t *testing.T, dir, entry, secret string) {
			mustDo(t, os.Remove(filepath.Join(dir, entry)))
			mustDo(t, syscall.Mkfifo(filepath.Join(dir, entry), 0o644))
		}},
	}
	for _, tc := range swaps {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			secret := filepath.Join(base, "tokens.json")
			mustDo(t, os.WriteFile(secret, []byte(`{"access_token":"at-secret"}`), 0o600))
			dir := filepath.Join(base, "watch")
			mustDo(t, os.Mkdir(dir, 0o755))
			mustDo(t, os.WriteFile(filepath.Join(dir, "clip.mov"), []byte("clip bytes"), 0o644))
			seen, err := os.Lstat(filepath.Join(dir, "clip.mov"))
			mustDo(t, err)
			w, sp := testWatcher(t, dir)

			tc.swap(t, dir, "clip.mov", secret)
			d, err := os.Open(dir)
			mustDo(t, err)
			defer d.Close()
			to, err := w.spooledDir(d)
			mustDo(t, err)
			defer to.Close()
			err = w.spoolFile(d, to, "clip.mov", seen)
			if !errors.Is(err, errNotPlainFile) {
				t.Errorf("spoolFile after the swap: %v, want errNotPlainFile", err)
			}
			if n := sp.Stats().Items; n != 0 {
				t.Errorf("%d items spooled from a swapped entry", n)
			}
		})
	}
}

// TestTrustSpooledCreatedWithOurChecks: a fresh .spooled is the agent's own
// 0700 directory; an existing one with a loose mode is tightened.
func TestTrustSpooledCreatedWithOurChecks(t *testing.T) {
	dir := t.TempDir()
	w, _ := testWatcher(t, dir)
	mustDo(t, os.WriteFile(filepath.Join(dir, "a.mov"), []byte("a"), 0o644))
	d, err := os.Open(dir)
	mustDo(t, err)
	defer d.Close()
	moveAside := func(name string) error {
		to, err := w.spooledDir(d)
		if err != nil {
			return err
		}
		defer to.Close()
		return moveInto(d, to, name)
	}
	mustDo(t, moveAside("a.mov"))
	fi, err := os.Lstat(filepath.Join(dir, spooledDir))
	mustDo(t, err)
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf(".spooled is %v, want a 0700 directory", fi.Mode())
	}
	mustDo(t, os.Chmod(filepath.Join(dir, spooledDir), 0o777))
	mustDo(t, os.WriteFile(filepath.Join(dir, "b.mov"), []byte("b"), 0o644))
	mustDo(t, moveAside("b.mov"))
	if fi, _ := os.Lstat(filepath.Join(dir, spooledDir)); fi.Mode().Perm() != 0o700 {
		t.Errorf("a loose .spooled stays %v", fi.Mode())
	}
	for _, n := range []string{"a.mov", "b.mov"} {
		if _, err := os.Lstat(filepath.Join(dir, spooledDir, n)); err != nil {
			t.Errorf("%s not moved aside: %v", n, err)
		}
	}
}

func testWatcher(t *testing.T, dir string) (*watcher, *spool.Spool) {
	t.Helper()
	deps := agenttest.Deps(t, "fio", nil, nil)
	deps.Spool = agenttest.Spool(t, spool.Options{})
	deps = deps.WithDefaults() // as New does
	l := &Link{log: deps.Logger, deps: deps}
	return newWatcher(l, dir), deps.Spool
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTrustUnwritableWatchDirQueuesNothing: the shipped unit mounts all but
// its own directories read-only, so moving a file aside failed after it was
// spooled, and every restart queued (and uploaded) it again. While .spooled
// cannot be made nothing is queued, and /status and the log say why once.
// (Root, the CI user, cannot be denied a write: the failure is injected as
// the read-only file system returns it.)
func TestTrustUnwritableWatchDirQueuesNothing(t *testing.T) {
	dir := t.TempDir()
	w, sp := testWatcher(t, dir)
	var logs bytes.Buffer
	w.l.log = slog.New(slog.NewTextHandler(&logs, nil))
	readOnly := true
	w.openSpooled = func(d *os.File, now time.Time) (*os.File, *setAside, error) {
		if readOnly {
			return nil, nil, fmt.Errorf("create %s: %w", spooledDir, syscall.EROFS)
		}
		return openSpooled(d, now)
	}
	mustDo(t, os.WriteFile(filepath.Join(dir, "A001.mov"), []byte("clip"), 0o644))
	for range 5 {
		w.scan()
	}
	if n := sp.Stats().Items; n != 0 {
		t.Fatalf("%d items queued from a directory they cannot be moved out of", n)
	}
	if d := w.l.deps.Stats.Details()["watch_dir"]; !strings.Contains(d, "files not queued") || !strings.Contains(d, "read-only") {
		t.Errorf("watch_dir detail = %q", d)
	}
	if n := strings.Count(logs.String(), "watch_dir is not writable"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	readOnly = false
	w.scan()
	if n := sp.Stats().Items; n != 1 {
		t.Errorf("%d items once writable, want 1", n)
	}
	if d := w.l.deps.Stats.Details()["watch_dir"]; d != "" {
		t.Errorf("watch_dir detail stays %q", d)
	}
}
