package spool_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/timesync"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// TestItemsKeepTheirStamp: with a time source every Put is stamped (wall,
// boottime, boot id, synchronized flag), PutStamped keeps the producer's
// stamp, and both survive a reopen, so a capture queued before NTP can be
// corrected after a restart.
func TestItemsKeepTheirStamp(t *testing.T) {
	dir := t.TempDir()
	src := timesync.NewFake(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	ts := timesync.New(src, timesync.Options{})
	open := func() *spool.Spool {
		s, err := spool.Open(dir, spool.Options{Clock: clock.NewFake(time.Unix(1e9, 0)), Time: ts})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	put, err := s.Put("k", meta{Name: "now"}, strings.NewReader("a"))
	if err != nil {
		t.Fatal(err)
	}
	src.Advance(time.Minute)
	early := ts.Now().Back(40 * time.Second)
	given, err := s.PutStamped("k", meta{Name: "earlier"}, &early, strings.NewReader("b"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]timesync.Stamp{
		put.ID:   {Wall: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Boot: time.Minute, BootID: "fake-boot-1"},
		given.ID: {Wall: time.Date(2025, 6, 1, 12, 0, 20, 0, time.UTC), Boot: 80 * time.Second, BootID: "fake-boot-1"},
	}
	for _, it := range open().Items() {
		w := want[it.ID]
		if it.Stamp == nil || !it.Stamp.Wall.Equal(w.Wall) || it.Stamp.Boot != w.Boot || it.Stamp.BootID != w.BootID || it.Stamp.Synced {
			t.Errorf("item %s: stamp %+v, want %+v", it.ID, it.Stamp, w)
		}
	}
}

// TestUnstampedItemsStayReadable: an item written before stamps existed
// (metadata without "stamp") and one queued without a time source are
// recovered with no stamp, not set aside as damaged.
func TestUnstampedItemsStayReadable(t *testing.T) {
	dir := t.TempDir()
	const id = "1700000000000000000-0a0b0c0d0e0f"
	old := `{"id":"` + id + `","kind":"frameio-asset","created":"2024-01-01T00:00:00Z","size":3,"meta":{"name":"x.jpg"}}`
	if err := os.WriteFile(filepath.Join(dir, id+".data"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".meta"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, 1<<20)
	if _, err := s.Put("k", nil, strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	items := mustOpen(t, dir, 1<<20).Items()
	if len(items) != 2 || items[0].ID != id || string(items[0].Meta) != `{"name":"x.jpg"}` {
		t.Fatalf("items = %+v", items)
	}
	for _, it := range items {
		if it.Stamp != nil {
			t.Errorf("item %s has stamp %+v", it.ID, it.Stamp)
		}
	}
}
