package frameio_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// TestTrustSpooledSymlinkCannotReplaceTokens: .spooled in the watch dir is
// a symbolic link to the link's state directory and a file named like the
// token file is dropped in. On main MkdirAll and Rename went through the
// link and replaced tokens.json with the attacker's. Now .spooled is
// renamed aside inside the watch dir, a directory of the agent's own is
// made, and the tokens stay as they were.
func TestTrustSpooledSymlinkCannotReplaceTokens(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	tokPath := frameio.TokenPath(&e.cfg, e.deps.StateDir)
	before, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	watch := filepath.Join(e.dir, "watch")
	if err := os.Mkdir(watch, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.deps.StateDir, filepath.Join(watch, ".spooled")); err != nil {
		t.Fatal(err)
	}
	forged := []byte(`{"access_token":"at-forged","refresh_token":"rt-forged"}`)
	if err := os.WriteFile(filepath.Join(watch, frameio.TokenFileName), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	e.cfg.Upload = frameio.Upload{WatchDir: watch, Parallel: 1}
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "the dropped file moved aside", func() bool {
		_, err := os.Lstat(filepath.Join(watch, frameio.TokenFileName))
		return os.IsNotExist(err)
	})
	after, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("tokens.json was replaced through .spooled:\n%s", after)
	}
	fi, err := os.Lstat(filepath.Join(watch, ".spooled"))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf(".spooled = %v, %v; want the agent's own 0700 directory", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(watch, ".spooled", frameio.TokenFileName)); err != nil {
		t.Errorf("the file is not in the new .spooled: %v", err)
	}
	aside, _ := filepath.Glob(filepath.Join(watch, ".spooled.untrusted-*"))
	if len(aside) != 1 {
		t.Errorf("the planted link was not renamed aside inside the watch dir: %v", aside)
	}
	if !strings.Contains(e.logs.String(), "was not the agent's own directory") {
		t.Errorf("no warning about the planted .spooled:\n%s", e.logs.String())
	}
}

// TestTrustWatchFileTooLargeForSpool: a finished file larger than the
// spool's room was copied, refused and copied again every scan (256 MiB of
// SD-card writes every 2 s for real footage). It must be reported once (log
// and /status), never copied while it does not fit, and taken once it does.
func TestTrustWatchFileTooLargeForSpool(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	sp := agenttest.Spool(t, spool.Options{MaxBytes: 64 << 10, Clock: e.spoolClock})
	e.deps.Spool, e.spool = sp, sp
	scans := &recClock{}
	e.deps.Clock = scans
	watch := filepath.Join(e.dir, "watch")
	if err := os.Mkdir(watch, 0o755); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(watch, "A002.mov")
	if err := os.WriteFile(big, randomBytes(100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	small := randomBytes(2 << 10)
	if err := os.WriteFile(filepath.Join(watch, "A001.mov"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	e.cfg.Upload = frameio.Upload{WatchDir: watch, Parallel: 1}
	opts := fastOptions()
	l := e.link(t, opts)
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "the small file delivered", func() bool {
		for _, a := range fake.Assets() {
			if a.Name == "A001.mov" && a.Complete && a.SHA256 == sum(small) {
				return true
			}
		}
		return false
	})
	waitScans := func(n int) {
		t.Helper()
		from := countSleeps(scans, opts.WatchEvery)
		agenttest.Eventually(t, "more scans", func() bool { return countSleeps(scans, opts.WatchEvery) >= from+n })
	}
	waitScans(5)
	if r := sp.Stats().Refused; r != 0 {
		t.Errorf("the big file was copied and refused %d times", r)
	}
	if d := e.stats.Details()["watch_dir"]; !strings.Contains(d, "A002.mov too large for the spool") {
		t.Errorf("status detail watch_dir = %q", d)
	}
	if n := strings.Count(e.logs.String(), "too large for the spool"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, e.logs.String())
	}
	if _, err := os.Stat(big); err != nil {
		t.Errorf("the big file was moved: %v", err)
	}
	// Cut to a size that fits: it changed, and now it is taken.
	if err := os.Truncate(big, 10<<10); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the cut file delivered", func() bool {
		for _, a := range fake.Assets() {
			if a.Name == "A002.mov" && a.Complete {
				return true
			}
		}
		return false
	})
	agenttest.Eventually(t, "the detail cleared", func() bool { return e.stats.Details()["watch_dir"] == "" })
}

func countSleeps(c *recClock, d time.Duration) int {
	n := 0
	for _, s := range c.Sleeps() {
		if s == d {
			n++
		}
	}
	return n
}
