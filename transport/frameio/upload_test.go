package frameio_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestAssetUpload spools assets of several sizes and faults and checks each
// arrives intact with every part PUT once (unless a part was made to fail).
func TestAssetUpload(t *testing.T) {
	rl := http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Window": {"300"}}
	tests := []struct {
		name      string
		size      int
		parts     int // expected part count (4 KiB parts, 1 KiB floor)
		faults    []frameiotest.Fault
		failParts int
		creates   int
		putCounts string
		// wait is the first retry wait the spool must take (the peer's).
		wait time.Duration
	}{
		{name: "one byte", size: 1, parts: 1, creates: 1, putCounts: "[1]"},
		{name: "exact parts", size: 12 << 10, parts: 3, creates: 1, putCounts: "[1,1,1]"},
		{name: "remainder in last part", size: 10<<10 + 7, parts: 3, creates: 1, putCounts: "[1,1,1]"},
		{name: "below part floor stays one part", size: 1<<10 + 5, parts: 1, creates: 1, putCounts: "[1]"},
		{name: "429 waits the rate-limit window", size: 5000, parts: 2, creates: 2, putCounts: "[1,1]", wait: 300 * time.Millisecond,
			faults: []frameiotest.Fault{{Status: 429, Message: "Too Many Requests", Header: rl}}},
		{name: "5xx retried with backoff", size: 5000, parts: 2, creates: 3, putCounts: "[1,1]",
			faults: []frameiotest.Fault{{Status: 502, Message: "Bad Gateway"}, {Status: 503, Message: "Unavailable"}}},
		{name: "409 slow_down retried", size: 5000, parts: 2, creates: 2, putCounts: "[1,1]",
			faults: []frameiotest.Fault{{Status: 409, Message: "slow_down"}}},
		{name: "failing part retried on the same URL", size: 9000, parts: 3, creates: 1, failParts: 2, putCounts: "[1,1,1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, frameiotest.Options{})
			e := newEnv(t, fake, true)
			fake.FailCreates(tc.faults...)
			fake.FailParts(tc.failParts)
			data := randomBytes(tc.size)
			captured := time.Now().Add(-90 * time.Second)
			putAsset(t, e.spool, "clip.mov", "video/quicktime", captured, data)
			l := e.link(t, fastOptions())
			runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
			agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
			a := fake.Assets()
			if len(a) != 1 || !a[0].Complete {
				t.Fatalf("assets = %+v", a)
			}
			if a[0].SHA256 != sum(data) || a[0].Parts != tc.parts || a[0].Filetype != "video/quicktime" || a[0].Filesize != int64(tc.size) {
				t.Errorf("asset = %+v, want %d parts and matching checksum", a[0], tc.parts)
			}
			if a[0].Offset < 89 || a[0].Offset > 600 {
				t.Errorf("offset = %d, want seconds since capture (~90)", a[0].Offset)
			}
			if got := mustJSON(a[0].PutCounts); got != tc.putCounts {
				t.Errorf("PUTs per part = %s, want %s", got, tc.putCounts)
			}
			if got := fake.Stats().Creates; got != tc.creates {
				t.Errorf("creates = %d, want %d", got, tc.creates)
			}
			if st := e.spool.Stats(); st.Delivered != 1 || st.Rejected != 0 {
				t.Errorf("spool stats %+v", st)
			}
			if tc.wait > 0 {
				if w := e.spoolClock.Sleeps(); len(w) == 0 || w[0] != tc.wait {
					t.Errorf("retry waits %v, want the first = %v (x-ratelimit-window)", w, tc.wait)
				}
			}
		})
	}
}

// TestPausedAssetsDropped: 409 Channel Paused is permanent for the item:
// dropped by the spool, never retried, the next item still uploads.
func TestPausedAssetsDropped(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	fake.FailCreates(frameiotest.Fault{Status: 409, Message: "Channel Paused"})
	putAsset(t, e.spool, "paused.jpg", "image/jpeg", time.Now(), randomBytes(100))
	good := randomBytes(200)
	putAsset(t, e.spool, "later.jpg", "image/jpeg", time.Now(), good)
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
	st := e.spool.Stats()
	if st.Rejected != 1 || st.Delivered != 1 || st.Retries != 0 {
		t.Errorf("spool stats %+v: want 1 rejected (never retried), 1 delivered", st)
	}
	if fs := fake.Stats(); fs.Creates != 2 || fs.Conflicts != 1 {
		t.Errorf("creates %d conflicts %d", fs.Creates, fs.Conflicts)
	}
	if a := fake.Assets(); len(a) != 1 || a[0].Name != "later.jpg" || a[0].SHA256 != sum(good) {
		t.Errorf("assets = %+v", a)
	}
}

// TestUploadAcrossFakeRestart restarts the fake while part 2 is in flight.
func TestUploadAcrossFakeRestart(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	e.cfg.Upload.Parallel = 1
	data := randomBytes(4 * 4 << 10)
	putAsset(t, e.spool, "big.mov", "video/quicktime", time.Now(), data)
	fake.BlockPart(2)
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	<-fake.PartStarted()
	if err := fake.Restart(); err != nil { // drops the held PUT
		t.Fatal(err)
	}
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
	a := fake.Assets()
	if len(a) != 1 || a[0].SHA256 != sum(data) || mustJSON(a[0].PutCounts) != "[1,1,1,1]" {
		t.Errorf("assets = %+v", a)
	}
}

// TestExpiredTokenOnCreate: a 401 on create refreshes and retries once.
func TestExpiredTokenOnCreate(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	fake.ExpireAccessTokens()
	putAsset(t, e.spool, "x.jpg", "image/jpeg", time.Now(), randomBytes(10))
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
	if st := fake.Stats(); st.Refreshes != 1 || st.Creates != 1 {
		t.Errorf("refreshes %d creates %d", st.Refreshes, st.Creates)
	}
}

// TestRefreshRefusedKeepsSpool: when re-pairing is needed nothing is lost.
func TestRefreshRefusedKeepsSpool(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	fake.ExpireAccessTokens()
	fake.RevokeRefreshTokens()
	putAsset(t, e.spool, "x.jpg", "image/jpeg", time.Now(), randomBytes(10))
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "a failed delivery", func() bool { return e.spool.Stats().Retries >= 2 })
	if st := e.spool.Stats(); st.Items != 1 || st.Rejected != 0 {
		t.Errorf("spool %+v: the item must stay queued", st)
	}
}

// wallClock is the real clock with a settable wall time, for the "no RTC"
// case: sleeps are real, Now can be in 1970 until "NTP" sets it.
type wallClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *wallClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *wallClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
}

func (c *wallClock) Sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// TestCreateHeldUntilClockSet: no asset is created while the wall clock is
// implausible; once it is set the asset goes up with offset 0 (its capture
// time was taken before the clock was set).
func TestCreateHeldUntilClockSet(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	clk := &wallClock{}
	clk.set(time.Date(1970, 1, 1, 0, 1, 0, 0, time.UTC))
	e.deps.Clock = clk
	putAsset(t, e.spool, "early.jpg", "image/jpeg", clk.Now(), randomBytes(10))
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "held deliveries", func() bool { return e.spool.Stats().Retries >= 3 })
	if fake.Stats().Creates != 0 {
		t.Fatalf("asset created with an unset clock")
	}
	clk.set(time.Now())
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Items == 0 })
	if a := fake.Assets(); len(a) != 1 || a[0].Offset != 0 {
		t.Errorf("assets = %+v", a)
	}
}

// TestStillsAndWatchDir runs the whole producer side: stills from the
// synthetic camera and a file dropped into the watch directory.
func TestStillsAndWatchDir(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	watch := filepath.Join(e.dir, "media")
	if err := os.MkdirAll(watch, 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg.Upload = frameio.Upload{Sensor: "cam", Every: conf.Duration(time.Second), WatchDir: watch, Parallel: 2}
	clip := randomBytes(9 << 10)
	if err := os.WriteFile(filepath.Join(watch, "A001.mov"), clip, 0o644); err != nil {
		t.Fatal(err)
	}
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "a still and the clip", func() bool {
		var still, mov bool
		for _, a := range fake.Assets() {
			still = still || (a.Filetype == "image/jpeg" && a.Complete)
			mov = mov || (a.Name == "A001.mov" && a.Complete && a.SHA256 == sum(clip))
		}
		return still && mov
	})
	if _, err := os.Stat(filepath.Join(watch, ".spooled", "A001.mov")); err != nil {
		t.Errorf("the clip was not kept on local storage: %v", err)
	}
	for _, a := range fake.Assets() {
		if a.Name == "A001.mov" && a.Filetype != "video/quicktime" {
			t.Errorf("filetype = %q", a.Filetype)
		}
	}
}

// TestPausedSkipsCaptures: while paused no stills are taken, and media
// captured during the pause is not created.
func TestPausedSkipsCaptures(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	e.cfg.Upload = frameio.Upload{Sensor: "cam", Every: conf.Duration(time.Second), Parallel: 1}
	fake.SetPaused(true)
	l := e.link(t, fastOptions())
	sup := agenttest.RunLink(t, "frameio", l, e.deps)
	agenttest.Eventually(t, "paused", func() bool { return l.Paused() })
	putAsset(t, e.spool, "during-pause.jpg", "image/jpeg", time.Now(), randomBytes(10))
	agenttest.Eventually(t, "dropped", func() bool { return e.spool.Stats().Rejected == 1 })
	time.Sleep(1200 * time.Millisecond) // one capture period
	if n := fake.Stats().Creates; n != 0 {
		t.Errorf("creates while paused = %d", n)
	}
	waitSessions(t, fake, sup, 1) // the resume is pushed on the channel
	fake.SetPaused(false)
	agenttest.Eventually(t, "a still after resume", func() bool { return len(fake.Assets()) >= 1 && fake.Assets()[0].Complete })
}

// TestUploadStill: a still a rule hands over is spooled under its name and
// uploaded complete with its bytes; while the channel is paused it is
// refused with the reason, and nothing is spooled.
func TestUploadStill(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	l := e.link(t, fastOptions())
	sup := agenttest.RunLink(t, "frameio", l, e.deps)
	still := randomBytes(3 << 10)
	if err := l.UploadStill("people_visitor_20261206_101500.jpg", still); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the rule's still uploaded", func() bool {
		for _, a := range fake.Assets() {
			if a.Name == "people_visitor_20261206_101500.jpg" && a.Complete && a.SHA256 == sum(still) && a.Filetype == "image/jpeg" {
				return true
			}
		}
		return false
	})
	waitSessions(t, fake, sup, 1) // the pause is pushed on the channel
	fake.SetPaused(true)
	agenttest.Eventually(t, "paused", func() bool { return l.Paused() })
	before := e.spool.Stats().Items
	if err := l.UploadStill("late.jpg", still); err == nil || !strings.Contains(err.Error(), "paused") {
		t.Errorf("UploadStill while paused = %v, want a refusal naming the pause", err)
	}
	if n := e.spool.Stats().Items; n != before {
		t.Errorf("spooled while paused: %d items, was %d", n, before)
	}
}
