package spool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/upload/spool"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(crashChild())
	}
	goleak.VerifyTestMain(m)
}

type meta struct {
	Name string `json:"name"`
}

func mustOpen(t *testing.T, dir string, max int64) *spool.Spool {
	t.Helper()
	s, err := spool.Open(dir, spool.Options{MaxBytes: max, Clock: clock.NewFake(time.Unix(1e9, 0))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 1<<20)
	var ids []string
	for i := range 3 {
		it, err := s.Put("sample", meta{Name: fmt.Sprint(i)}, strings.NewReader(strings.Repeat("x", 100+i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, it.ID)
	}
	if err := s.SetProgress(ids[1], map[string]int{"parts": 2}); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, dir, 1<<20)
	items := s2.Items()
	if len(items) != 3 {
		t.Fatalf("reopened spool has %d items", len(items))
	}
	for i, it := range items {
		if it.ID != ids[i] || it.Size != int64(100+i) || it.Kind != "sample" {
			t.Errorf("item %d = %+v", i, it)
		}
	}
	if string(items[1].Progress) != `{"parts":2}` {
		t.Errorf("progress = %s", items[1].Progress)
	}
	if st := s2.Stats(); st.Bytes != 303 || st.Items != 3 {
		t.Errorf("stats = %+v", st)
	}
	f, err := s2.Open(ids[2])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if len(b) != 102 {
		t.Errorf("data len %d", len(b))
	}
	if err := s2.Remove(ids[0]); err != nil {
		t.Fatal(err)
	}
	if left := mustOpen(t, dir, 1<<20).Items(); len(left) != 2 {
		t.Errorf("after remove: %d items", len(left))
	}
	for _, name := range []string{ids[0] + ".data", ids[0] + ".meta"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s still exists", name)
		}
	}
	fi, _ := os.Stat(filepath.Join(dir, ids[1]+".meta"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("meta mode %o", fi.Mode().Perm())
	}
}

func TestRecoveryCleansCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 1<<20)
	it, err := s.Put("k", nil, strings.NewReader("keep"))
	if err != nil {
		t.Fatal(err)
	}
	// What a crash can leave: a temp file mid-write, data without committed
	// metadata, and (disk damage) unreadable metadata.
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "0000000000000000001-aaaa.data"), []byte("orphan"), 0o600)
	os.WriteFile(filepath.Join(dir, "0000000000000000002-bbbb.data"), []byte("damaged"), 0o600)
	os.WriteFile(filepath.Join(dir, "0000000000000000002-bbbb.meta"), []byte("{not json"), 0o600)
	s2 := mustOpen(t, dir, 1<<20)
	if items := s2.Items(); len(items) != 1 || items[0].ID != it.ID {
		t.Fatalf("items = %+v", items)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	got := strings.Join(names, " ")
	if strings.Contains(got, ".tmp-") || strings.Contains(got, "aaaa") {
		t.Errorf("leftovers not cleaned: %s", got)
	}
	if !strings.Contains(got, "bbbb.meta.damaged") {
		t.Errorf("damaged item not set aside: %s", got)
	}
}

func TestFullSpoolRefusesNewItems(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 1000)
	if _, err := s.Put("k", nil, bytes.NewReader(make([]byte, 600))); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put("k", nil, bytes.NewReader(make([]byte, 600)))
	if !errors.Is(err, spool.ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	if st := s.Stats(); st.Refused != 1 || st.Items != 1 || st.Bytes != 600 {
		t.Errorf("stats = %+v", st)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 { // one .data + one .meta; the refused temp file is gone
		t.Errorf("dir has %d entries", len(ents))
	}
	if _, err := s.Put("k", nil, bytes.NewReader(make([]byte, 400))); err != nil {
		t.Errorf("item that fits refused: %v", err)
	}
}

func TestDeliverOrderRetryAndReject(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.Unix(1e9, 0))
	s, err := spool.Open(dir, spool.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "paused", "c"} {
		if _, err := s.Put("k", meta{Name: name}, strings.NewReader(name)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Millisecond) // distinct, ordered ids
	}
	var mu sync.Mutex
	var attempts []string
	failsLeft := 2
	ctx, cancel := context.WithCancel(context.Background())
	deliver := func(ctx context.Context, it spool.Item, body *os.File) error {
		b, _ := io.ReadAll(body)
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, string(b))
		switch {
		case string(b) == "b" && failsLeft > 0:
			failsLeft--
			return retry.RetryAfter(errors.New("503"), 7*time.Second)
		case string(b) == "paused":
			return retry.Permanent(errors.New("409 channel paused"))
		}
		if s.Stats().Items == 1 {
			cancel()
		}
		return nil
	}
	if err := s.Deliver(ctx, deliver, retry.Policy{Min: time.Second}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver = %v", err)
	}
	want := "a b b b paused c"
	if got := strings.Join(attempts, " "); got != want {
		t.Errorf("attempts %q, want %q", got, want)
	}
	if got := clk.Sleeps(); len(got) != 2 || got[0] != 7*time.Second {
		t.Errorf("sleeps = %v, want two 7s Retry-After waits", got)
	}
	st := s.Stats()
	if st.Items != 0 || st.Delivered != 3 || st.Rejected != 1 || st.Retries != 2 {
		t.Errorf("stats = %+v", st)
	}
}
