package timesync_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/timesync"
)

// shutdown is the time fake-hwclock restores at boot: the last shutdown,
// months before the true time.
var (
	shutdown = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	truth    = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
)

// TestCapturesBeforeSyncAreCorrected: captures made on a stale clock that
// also jumps backwards before NTP get their true times once the clock is
// synchronized; before that their ages are exact and never negative.
func TestCapturesBeforeSyncAreCorrected(t *testing.T) {
	src := timesync.NewFake(shutdown)
	ts := timesync.New(src, timesync.Options{})
	bootWall := truth.Add(-time.Minute) // the true time at boot (boottime 1 min)

	a := ts.Now() // at boottime 1 min
	src.Advance(10 * time.Second)
	src.Step(-time.Hour) // a jump backwards before sync (a second time source, a hand-set date)
	src.Advance(5 * time.Second)
	b := ts.Now() // boottime 1 min 15 s; its wall time is before a's
	if !b.Wall.Before(a.Wall) || a.Synced || b.Synced {
		t.Fatalf("setup: a %+v b %+v", a, b)
	}
	src.Advance(30 * time.Second)

	// Not synchronized yet: ages are exact, times are estimates.
	for _, c := range []struct {
		st  timesync.Stamp
		age time.Duration
	}{{a, 45 * time.Second}, {b, 30 * time.Second}} {
		got := ts.Resolve(c.st)
		if got.Age != c.age || got.Quality != timesync.Estimated {
			t.Errorf("before sync: %+v, want age %v, estimated", got, c.age)
		}
	}

	// NTP steps the clock to the truth.
	wall, boot := src.Read()
	src.Step(bootWall.Add(boot).Sub(wall))
	src.SetSynced(true)
	src.Advance(2 * time.Second) // past the cache
	c := ts.Now()
	if !c.Synced {
		t.Fatal("the synchronized flag was not seen after the cache period")
	}
	for _, x := range []struct {
		name string
		st   timesync.Stamp
	}{{"a", a}, {"b", b}, {"c", c}} {
		got := ts.Resolve(x.st)
		want := bootWall.Add(x.st.Boot)
		if !got.Time.Equal(want) {
			t.Errorf("%s: time %v, want %v (its boottime after the boot's true time)", x.name, got.Time, want)
		}
		if got.Age < 0 {
			t.Errorf("%s: negative age %v", x.name, got.Age)
		}
		wantQ := timesync.Corrected
		if x.st.Synced {
			wantQ = timesync.Exact
		}
		if got.Quality != wantQ {
			t.Errorf("%s: quality %v, want %v", x.name, got.Quality, wantQ)
		}
	}
}

// TestEarlierBoot: a stamp of an earlier boot keeps its wall time: exact if
// it was synchronized, uncorrectable if not; its age is from wall times and
// never negative.
func TestEarlierBoot(t *testing.T) {
	src := timesync.NewFake(shutdown)
	before := timesync.New(src, timesync.Options{})
	unsynced := before.Now()
	src.SetSynced(true)
	src.Advance(2 * time.Second)
	synced := before.Now()

	src.Reboot(shutdown.Add(-time.Hour)) // booted with a clock older than the stamps
	ts := timesync.New(src, timesync.Options{})
	for _, c := range []struct {
		name string
		st   timesync.Stamp
		q    timesync.Quality
	}{{"unsynced", unsynced, timesync.Uncorrectable}, {"synced", synced, timesync.Exact}} {
		got := ts.Resolve(c.st)
		if !got.Time.Equal(c.st.Wall) || got.Quality != c.q || got.Age != 0 {
			t.Errorf("%s: %+v, want its own wall time, %v, age 0 (it looks newer than now)", c.name, got, c.q)
		}
	}
	src.Step(2 * time.Hour)
	if got := ts.Resolve(unsynced); got.Age != time.Hour {
		t.Errorf("age %v, want the wall difference 1h", got.Age)
	}
	if got := ts.Resolve(timesync.Stamp{}); got.Quality != timesync.Uncorrectable || !got.Time.IsZero() {
		t.Errorf("zero stamp: %+v", got)
	}
}

// countingSource counts Synced calls.
type countingSource struct {
	*timesync.Fake
	calls int
}

func (c *countingSource) Synced() (bool, error) {
	c.calls++
	return c.Fake.Synced()
}

// TestSyncedIsCached: the source is asked at most once per CacheFor of
// boottime, and a change is seen after it.
func TestSyncedIsCached(t *testing.T) {
	src := &countingSource{Fake: timesync.NewFake(shutdown)}
	ts := timesync.New(src, timesync.Options{CacheFor: time.Second})
	for range 5 {
		ts.Now()
	}
	src.SetSynced(true)
	src.Advance(500 * time.Millisecond)
	if ts.Synced() || src.calls != 1 {
		t.Errorf("within the cache: synced %v after %d calls, want the cached false after 1", ts.Synced(), src.calls)
	}
	src.Advance(600 * time.Millisecond)
	if !ts.Synced() || src.calls != 2 {
		t.Errorf("after the cache: synced %v after %d calls, want true after 2", ts.Synced(), src.calls)
	}
}

// TestSyncLogs: one line when the clock is found unsynchronized, one with the
// step NTP made when it becomes synchronized, one when it is lost; a source
// that cannot tell is logged once and counts as not synchronized.
func TestSyncLogs(t *testing.T) {
	logs := &logxtest.Buffer{}
	src := timesync.NewFake(shutdown)
	src.SetError(errors.New("adjtimex: operation not permitted"))
	ts := timesync.New(src, timesync.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), CacheFor: time.Nanosecond})
	for range 3 {
		src.Advance(time.Second)
		if ts.Synced() {
			t.Fatal("a failing source counts as synchronized")
		}
	}
	src.SetError(nil)
	src.Step(24 * time.Hour)
	src.SetSynced(true)
	src.Advance(time.Second)
	ts.Now()
	src.SetSynced(false)
	src.Advance(time.Second)
	ts.Now()
	out := logs.String()
	for _, want := range []string{"not synchronized yet", "step=24h0m0s", "no longer reported synchronized"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}
	if n := strings.Count(out, "cannot tell"); n != 1 {
		t.Errorf("the source's error logged %d times, want once", n)
	}
}

// TestStampJSON: a stamp survives the spool's JSON, Back never goes before
// boot.
func TestStampJSON(t *testing.T) {
	st := timesync.Stamp{Wall: shutdown, Boot: 90 * time.Second, BootID: "b", Synced: false}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var got timesync.Stamp
	if err := json.Unmarshal(b, &got); err != nil || !got.Wall.Equal(st.Wall) || got.Boot != st.Boot || got.BootID != "b" {
		t.Errorf("round trip %s -> %+v, %v", b, got, err)
	}
	if !strings.Contains(string(b), `"boot_ns":90000000000`) {
		t.Errorf("boottime not stored in nanoseconds: %s", b)
	}
	if back := st.Back(2 * time.Minute); back.Boot != 0 || !back.Wall.Equal(shutdown.Add(-90*time.Second)) {
		t.Errorf("Back past boot: %+v", back)
	}
	if (timesync.Stamp{}).IsZero() != true || st.IsZero() {
		t.Error("IsZero")
	}
}

// TestSystem reads the real clocks: boottime moves forward with the wall
// clock, the boot id is stable, and a Sync over it stamps with both.
func TestSystem(t *testing.T) {
	src := timesync.System()
	w1, b1 := src.Read()
	time.Sleep(10 * time.Millisecond)
	w2, b2 := src.Read()
	if b1 <= 0 || b2 <= b1 || w2.Before(w1) {
		t.Errorf("reads (%v, %v) then (%v, %v)", w1, b1, w2, b2)
	}
	if w1 != w1.Round(0) {
		t.Errorf("wall time %v keeps a monotonic reading: comparisons would not see a step of the wall clock", w1)
	}
	if id := src.BootID(); id == "" || id != timesync.System().BootID() {
		t.Errorf("boot id %q not stable", id)
	}
	if _, err := src.Synced(); err != nil {
		t.Errorf("Synced: %v", err)
	}
	ts := timesync.New(src, timesync.Options{})
	st := ts.Now()
	if got := ts.Resolve(st); got.Age < 0 || got.Quality == timesync.Uncorrectable {
		t.Errorf("a stamp of this boot resolved to %+v", got)
	}
}
