package frameio_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/timesync"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// boardClock is the link's clock on a board without a real-time clock: Now
// is the fake source's wall clock (stale, jumping), sleeps are real.
type boardClock struct{ src *timesync.Fake }

func (c boardClock) Now() time.Time { w, _ := c.src.Read(); return w }

func (c boardClock) Sleep(ctx context.Context, d time.Duration) error {
	return (&recClock{}).Sleep(ctx, d)
}

// TestOffsetFromMonotonicAge: a board without a real-time clock boots with
// the time of its last shutdown, months old; the clock jumps backwards, then
// forwards when NTP sets it, while assets wait. Every asset of this boot goes
// up with offset = its monotonic age, whatever the wall clock did (never 0
// because the clock went back, never months because it went forward); one
// from an earlier boot keeps its wall time, with a log line; nothing is lost.
func TestOffsetFromMonotonicAge(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	src := timesync.NewFake(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)) // fake-hwclock: the last shutdown
	clk := boardClock{src}
	e.deps.Clock = clk
	e.deps.Time = timesync.New(src, timesync.Options{})
	e.spool = agenttest.Spool(t, spool.Options{Logger: e.deps.Logger, Time: e.deps.Time})
	e.deps.Spool = e.spool
	watch := filepath.Join(e.dir, "media")
	if err := os.MkdirAll(watch, 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg.Upload.WatchDir = watch

	// Before sync: one asset queued in an earlier boot (before that boot's
	// clock was set), a at boot, b 15 s later after the clock went back 1 h.
	earlier := timesync.Stamp{Wall: time.Date(2025, 5, 30, 8, 0, 0, 0, time.UTC), Boot: time.Hour, BootID: "an-earlier-boot"}
	if _, err := e.spool.PutStamped("frameio-asset", map[string]any{"name": "earlier-boot.jpg", "filetype": "image/jpeg",
		"captured": earlier.Wall, "source": "test"}, &earlier, strings.NewReader("e")); err != nil {
		t.Fatal(err)
	}
	putAsset(t, e.spool, "a.jpg", "image/jpeg", clk.Now(), randomBytes(10))
	src.Advance(10 * time.Second)
	src.Step(-time.Hour)
	src.Advance(5 * time.Second)
	putAsset(t, e.spool, "b.jpg", "image/jpeg", clk.Now(), randomBytes(10)) // dated an hour before a
	src.Advance(20 * time.Second)
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "the first three uploaded", func() bool { return len(fake.Assets()) == 3 && e.spool.Stats().Items == 0 })

	// NTP sets the true time, months later. p was captured just before and
	// reaches the spool after; c was captured 10 s before it was queued; d
	// is a file the watcher finds 7 s after it was written.
	p := e.deps.Time.Now()
	src.Step(9 * 30 * 24 * time.Hour)
	src.SetSynced(true)
	src.Advance(5 * time.Second)
	if _, err := e.spool.PutStamped("frameio-asset", map[string]any{"name": "p.jpg", "filetype": "image/jpeg",
		"captured": p.Wall, "source": "test"}, &p, strings.NewReader("p")); err != nil {
		t.Fatal(err)
	}
	c := e.deps.Time.Now().Back(10 * time.Second)
	if _, err := e.spool.PutStamped("frameio-asset", map[string]any{"name": "c.jpg", "filetype": "image/jpeg",
		"captured": c.Wall, "source": "test"}, &c, strings.NewReader("c")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(watch, "d.mov"), randomBytes(10), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(watch, "d.mov"), clk.Now(), clk.Now().Add(-7*time.Second)); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "every asset uploaded", func() bool { return len(fake.Assets()) == 6 && e.spool.Stats().Items == 0 })

	want := map[string]int64{
		"a.jpg": 35, "b.jpg": 20, "p.jpg": 5, "c.jpg": 10, "d.mov": 7,
		// wall time of the upload − wall time as taken: 2 days 3 h 35 s
		"earlier-boot.jpg": 2*86400 + 3*3600 + 35,
	}
	for _, a := range fake.Assets() {
		if !a.Complete || a.Offset != want[a.Name] {
			t.Errorf("%s: offset %d (complete %v), want %d", a.Name, a.Offset, a.Complete, want[a.Name])
		}
	}
	if !strings.Contains(e.logs.String(), "earlier boot before the clock was synchronized") {
		t.Errorf("no log line for the uncorrectable asset:\n%s", e.logs.String())
	}
	if st := e.spool.Stats(); st.Delivered != 6 || st.Rejected != 0 {
		t.Errorf("spool %+v: want all 6 delivered", st)
	}
}

// TestStillsAreStamped: a still taken by the link carries the link's own
// stamp (not the spool's, which has no time source here), so its offset
// survives a clock step before the upload.
func TestStillsAreStamped(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, false) // not paired: the still waits in the spool
	src := timesync.NewFake(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	e.deps.Time = timesync.New(src, timesync.Options{})
	e.cfg.Upload = frameio.Upload{Sensor: "cam", Every: conf.Duration(50 * time.Millisecond), Parallel: 1}
	l := e.link(t, fastOptions())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Work(ctx) }()
	agenttest.Eventually(t, "a still queued", func() bool { return e.spool.Stats().Items >= 1 })
	cancel()
	<-done
	it := e.spool.Items()[0]
	if it.Stamp == nil || it.Stamp.BootID != "fake-boot-1" || it.Stamp.Boot != time.Minute {
		t.Fatalf("still stamp %+v, want the link's fake boot at 1 min", it.Stamp)
	}
}
