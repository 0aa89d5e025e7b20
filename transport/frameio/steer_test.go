package frameio_test

import (
	"context"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// TestPauseResumesAtTheNextPart: pausing uploads while part 3 of 4 is in
// flight stops it (no failure counted, the item stays); the console shows
// the two parts sent; on resuming, the same asset continues with part 3:
// no second create, parts 1 and 2 not sent again.
func TestPauseResumesAtTheNextPart(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	e.cfg.Upload.Parallel = 1
	data := randomBytes(4 * 4 << 10)
	it := putAsset(t, e.spool, "clip.mov", "video/quicktime", time.Now(), data)
	fake.BlockPart(3)
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	<-fake.PartStarted()
	ents := e.spool.List()
	if len(ents) != 1 || !ents[0].InFlight || ents[0].Sent != 8<<10 {
		t.Errorf("in flight with two parts done: listed %+v", ents)
	}
	if err := e.spool.SetPaused(true); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the delivery to stop", func() bool {
		ents := e.spool.List()
		return len(ents) == 1 && !ents[0].InFlight
	})
	fake.BlockPart(0)
	if st := e.spool.Stats(); st.Items != 1 || st.Retries != 0 {
		t.Errorf("after the pause: %+v, want the item kept and no failure counted", st)
	}
	if err := e.spool.SetPaused(false); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "spool drained", func() bool { return e.spool.Stats().Delivered == 1 })
	a := fake.Assets()
	if len(a) != 1 || a[0].SHA256 != sum(data) || mustJSON(a[0].PutCounts) != "[1,1,1,1]" || fake.Stats().Creates != 1 {
		t.Errorf("assets %+v, creates %d: want one asset, each part once", a, fake.Stats().Creates)
	}
	if _, ok := e.spool.Get(it.ID); ok {
		t.Error("the item is still queued")
	}
}

// TestCancelAssetInFlight: cancelling the asset being uploaded stops it,
// removes it from the spool for good, and the next asset goes.
func TestCancelAssetInFlight(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	e.cfg.Upload.Parallel = 1
	it := putAsset(t, e.spool, "big.mov", "video/quicktime", time.Now(), randomBytes(4*4<<10))
	next := randomBytes(100)
	putAsset(t, e.spool, "next.jpg", "image/jpeg", time.Now(), next)
	fake.BlockPart(2)
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	<-fake.PartStarted()
	if err := e.spool.Cancel(it.ID); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the next asset delivered", func() bool { return e.spool.Stats().Delivered == 1 })
	st := e.spool.Stats()
	if st.Items != 0 || st.Cancelled != 1 || st.Retries != 0 {
		t.Errorf("spool %+v: want the cancelled asset gone and counted, no failure", st)
	}
	var done []string
	for _, a := range fake.Assets() {
		if a.Complete {
			done = append(done, a.Name)
		}
	}
	if len(done) != 1 || done[0] != "next.jpg" {
		t.Errorf("complete assets %v, want only next.jpg", done)
	}
}
