package spool_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// waitClock is a clock whose Sleep lasts until its context ends, so a
// backoff wait ends only when the spool cuts it short (or the test ends).
// Each Sleep is announced on sleeping.
type waitClock struct {
	mu       sync.Mutex
	now      time.Time
	sleeping chan time.Duration
}

func newWaitClock() *waitClock {
	return &waitClock{now: time.Unix(1e9, 0), sleeping: make(chan time.Duration, 16)}
}

func (c *waitClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond) // distinct, ordered ids
	return c.now
}

func (c *waitClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeping <- d
	<-ctx.Done()
	return ctx.Err()
}

// deliverer is a DeliverFunc the test steers: each call announces its item
// on started and then does what the item's script says.
type deliverer struct {
	started chan string
	mu      sync.Mutex
	script  map[string][]func(ctx context.Context, body *os.File) error
	causes  chan error // the context cause of every call that ended by its context
}

func newDeliverer() *deliverer {
	return &deliverer{started: make(chan string, 64), script: map[string][]func(context.Context, *os.File) error{},
		causes: make(chan error, 64)}
}

// on queues what the next call for item name does; with nothing queued a
// call succeeds.
func (d *deliverer) on(name string, f func(ctx context.Context, body *os.File) error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.script[name] = append(d.script[name], f)
}

func (d *deliverer) deliver(ctx context.Context, it spool.Item, body *os.File) error {
	name := string(it.Meta)
	d.started <- name
	d.mu.Lock()
	var f func(context.Context, *os.File) error
	if q := d.script[name]; len(q) > 0 {
		f, d.script[name] = q[0], q[1:]
	}
	d.mu.Unlock()
	if f == nil {
		return nil
	}
	err := f(ctx, body)
	if ctx.Err() != nil {
		d.causes <- context.Cause(ctx)
	}
	return err
}

// block waits until the delivery's context ends.
func block(ctx context.Context, _ *os.File) error {
	<-ctx.Done()
	return ctx.Err()
}

// runDeliver runs Deliver until the test ends.
func runDeliver(t *testing.T, s *spool.Spool, d *deliverer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Deliver(ctx, d.deliver, retry.Policy{Min: time.Hour, Max: time.Hour}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Deliver = %v", err)
		}
	})
}

func putNamed(t *testing.T, s *spool.Spool, names ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, n := range names {
		// The meta is the name's JSON string; the deliverer reads it back.
		it, err := s.Put("k", n, strings.NewReader(strings.Repeat(n, 100)))
		if err != nil {
			t.Fatal(err)
		}
		ids[`"`+n+`"`] = it.ID
	}
	return ids
}

func next(t *testing.T, d *deliverer) string {
	t.Helper()
	return <-d.started
}

func entry(t *testing.T, s *spool.Spool, id string) spool.Entry {
	t.Helper()
	for _, e := range s.List() {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("item %s not listed", id)
	return spool.Entry{}
}

// TestCancelSurvivesRestart: a cancelled item is gone from the directory
// and stays gone when the spool opens again (as after a restart or a
// power cut right after Cancel returned), and it is counted; CancelAll
// drops the rest the same way.
func TestCancelSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 1<<20)
	ids := putNamed(t, s, "a", "b", "c", "d")
	if err := s.SetProgress(ids[`"b"`], "part 1 of 2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ids[`"b"`]); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ids[`"b"`]); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("second cancel = %v, want ErrNotFound", err)
	}
	if st := s.Stats(); st.Cancelled != 1 || st.Items != 3 || st.Bytes != 300 {
		t.Errorf("stats after cancel = %+v", st)
	}
	for _, suffix := range []string{".data", ".meta", ".progress"} {
		if _, err := os.Stat(filepath.Join(dir, ids[`"b"`]+suffix)); !os.IsNotExist(err) {
			t.Errorf("%s of the cancelled item still on disk: %v", suffix, err)
		}
	}
	re := mustOpen(t, dir, 1<<20)
	var left []string
	for _, it := range re.Items() {
		left = append(left, string(it.Meta))
	}
	if got := strings.Join(left, " "); got != `"a" "c" "d"` {
		t.Errorf("after a restart the spool holds %s, want a c d", got)
	}

	n, err := re.CancelAll()
	if err != nil || n != 3 {
		t.Fatalf("CancelAll = %d, %v", n, err)
	}
	if st := re.Stats(); st.Cancelled != 3 || st.Items != 0 || st.Bytes != 0 {
		t.Errorf("stats after cancel all = %+v", st)
	}
	if items := mustOpen(t, dir, 1<<20).Items(); len(items) != 0 {
		t.Errorf("after CancelAll and a restart: %d items", len(items))
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("left in the directory: %v", ents)
	}
}

// TestCancelInFlight: cancelling the item being sent ends its delivery
// (the deliverer sees ErrCancelled), removes it, counts it once and not as
// a failed attempt, and the queue moves on to the next item.
func TestCancelInFlight(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 1<<20)
	ids := putNamed(t, s, "a", "b")
	d := newDeliverer()
	d.on(`"a"`, block)
	runDeliver(t, s, d)
	if got := next(t, d); got != `"a"` {
		t.Fatalf("first delivery %s", got)
	}
	if e := entry(t, s, ids[`"a"`]); !e.InFlight || e.Attempts != 1 {
		t.Errorf("the item in flight is listed as %+v", e)
	}
	if err := s.Cancel(ids[`"a"`]); err != nil {
		t.Fatal(err)
	}
	if c := <-d.causes; !errors.Is(c, spool.ErrCancelled) {
		t.Errorf("the deliverer's context ended with %v, want ErrCancelled", c)
	}
	if got := next(t, d); got != `"b"` {
		t.Errorf("after the cancel %s was sent, want b", got)
	}
	agenttest.Eventually(t, "b delivered", func() bool { return s.Stats().Delivered == 1 })
	if st := s.Stats(); st.Cancelled != 1 || st.Delivered != 1 || st.Retries != 0 {
		t.Errorf("stats = %+v, want 1 cancelled, 1 delivered, no retry", st)
	}
	if items := mustOpen(t, dir, 1<<20).Items(); len(items) != 0 {
		t.Errorf("reopened: %d items", len(items))
	}
}

// TestPauseAndManualSend: pausing stops the item in flight (ErrPaused) but
// keeps it queued; while paused only the item a user asks for is sent, one
// attempt per request; the mode survives a restart; resuming sends the rest
// in order.
func TestPauseAndManualSend(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 1<<20)
	ids := putNamed(t, s, "a", "b", "c")
	d := newDeliverer()
	d.on(`"a"`, block)
	d.on(`"c"`, func(context.Context, *os.File) error { return errors.New("HTTP 503") })
	runDeliver(t, s, d)
	if got := next(t, d); got != `"a"` {
		t.Fatalf("first delivery %s", got)
	}
	if err := s.SetPaused(true); err != nil {
		t.Fatal(err)
	}
	if c := <-d.causes; !errors.Is(c, spool.ErrPaused) {
		t.Errorf("the deliverer's context ended with %v, want ErrPaused", c)
	}
	if !mustOpen(t, dir, 1<<20).Paused() {
		t.Error("the paused mode is not kept across a restart")
	}
	// Manual sends: c fails (one attempt, no retry), then b goes.
	if err := s.RetryNow(ids[`"c"`]); err != nil {
		t.Fatal(err)
	}
	if got := next(t, d); got != `"c"` {
		t.Fatalf("manual send delivered %s, want c", got)
	}
	if err := s.RetryNow(ids[`"b"`]); err != nil {
		t.Fatal(err)
	}
	if got := next(t, d); got != `"b"` {
		t.Fatalf("manual send delivered %s, want b (c must not be retried by itself while paused)", got)
	}
	agenttest.Eventually(t, "b removed after its delivery", func() bool { return s.Stats().Delivered == 1 })
	e := entry(t, s, ids[`"c"`])
	if e.Attempts != 1 || e.LastError != "HTTP 503" || !e.NextAttempt.IsZero() {
		t.Errorf("c after its failed manual send: %+v", e)
	}
	if e := entry(t, s, ids[`"a"`]); e.Attempts != 1 || e.LastError != "" || e.InFlight {
		t.Errorf("a after the pause stopped it: %+v", e)
	}
	if err := s.RetryNow(ids[`"b"`]); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("RetryNow of a delivered item = %v", err)
	}
	if err := s.SetPaused(false); err != nil {
		t.Fatal(err)
	}
	if got := next(t, d) + next(t, d); got != `"a""c"` {
		t.Errorf("after resuming %s, want a then c", got)
	}
	if st := s.Stats(); st.Retries != 1 {
		t.Errorf("retries %d, want 1 (the pause is not a failure)", st.Retries)
	}
}

// TestRetryNowEndsBackoff: a failed item waits out its backoff (listed with
// its attempts, error and next attempt) until RetryNow sends it at once.
func TestRetryNowEndsBackoff(t *testing.T) {
	clk := newWaitClock()
	s, err := spool.Open(t.TempDir(), spool.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ids := putNamed(t, s, "a", "b")
	d := newDeliverer()
	d.on(`"a"`, func(context.Context, *os.File) error { return errors.New("connection refused") })
	runDeliver(t, s, d)
	if got := next(t, d); got != `"a"` {
		t.Fatalf("first delivery %s", got)
	}
	if w := <-clk.sleeping; w != time.Hour {
		t.Errorf("backoff %v, want the policy's hour", w)
	}
	e := entry(t, s, ids[`"a"`])
	if e.Attempts != 1 || e.LastError != "connection refused" || e.NextAttempt.IsZero() || e.InFlight {
		t.Errorf("a waiting out its backoff: %+v", e)
	}
	if err := s.RetryNow(ids[`"a"`]); err != nil {
		t.Fatal(err)
	}
	if got := next(t, d) + next(t, d); got != `"a""b"` {
		t.Errorf("after RetryNow %s, want a then b", got)
	}
}

// TestCancelEndsBackoff: cancelling the item waiting out its backoff lets
// the next one go at once.
func TestCancelEndsBackoff(t *testing.T) {
	clk := newWaitClock()
	s, err := spool.Open(t.TempDir(), spool.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ids := putNamed(t, s, "a", "b")
	d := newDeliverer()
	d.on(`"a"`, func(context.Context, *os.File) error { return errors.New("HTTP 500") })
	runDeliver(t, s, d)
	next(t, d)
	<-clk.sleeping
	if err := s.Cancel(ids[`"a"`]); err != nil {
		t.Fatal(err)
	}
	if got := next(t, d); got != `"b"` {
		t.Errorf("after cancelling the waiting item %s was sent, want b", got)
	}
}

// TestListProgress: the item in flight shows the bytes the deliverer
// reported, else how far it read the body.
func TestListProgress(t *testing.T) {
	s := mustOpen(t, t.TempDir(), 1<<20)
	ids := putNamed(t, s, "a", "b")
	d := newDeliverer()
	read := make(chan struct{})
	d.on(`"a"`, func(ctx context.Context, body *os.File) error {
		if _, err := io.CopyN(io.Discard, body, 40); err != nil {
			return err
		}
		close(read)
		return block(ctx, body)
	})
	reported := make(chan struct{})
	d.on(`"b"`, func(ctx context.Context, body *os.File) error {
		s.ReportSent(ids[`"b"`], 70)
		close(reported)
		return block(ctx, body)
	})
	runDeliver(t, s, d)
	next(t, d)
	<-read
	if e := entry(t, s, ids[`"a"`]); !e.InFlight || e.Sent != 40 || e.Started.IsZero() {
		t.Errorf("a read 40 bytes: listed %+v", e)
	}
	if e := entry(t, s, ids[`"b"`]); e.InFlight || e.Sent != -1 {
		t.Errorf("b waiting: listed %+v", e)
	}
	if err := s.Cancel(ids[`"a"`]); err != nil {
		t.Fatal(err)
	}
	next(t, d)
	<-reported
	if e := entry(t, s, ids[`"b"`]); !e.InFlight || e.Sent != 70 {
		t.Errorf("b reported 70 bytes: listed %+v", e)
	}
}

// TestUploadModeFollowsConfigChanges: the mode a user chose is kept across
// restarts while the config's upload mode stays as it was; when the config
// changes, the config's mode applies.
func TestUploadModeFollowsConfigChanges(t *testing.T) {
	dir := t.TempDir()
	open := func(manual bool) *spool.Spool {
		t.Helper()
		s, err := spool.Open(dir, spool.Options{Manual: manual})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if open(true).Paused() != true || open(false).Paused() != false {
		t.Fatal("without a choice the config's mode does not apply")
	}
	s := open(true)
	if err := s.SetPaused(false); err != nil { // a user resumes under config manual
		t.Fatal(err)
	}
	steps := []struct {
		cfgManual, want bool
	}{
		{true, false}, // same config: the user's choice stays
		{true, false},
		{false, false}, // config now auto: auto, and the old choice is forgotten
		{true, true},   // config back to manual: manual
	}
	for i, st := range steps {
		if got := open(st.cfgManual).Paused(); got != st.want {
			t.Errorf("step %d: config manual=%v gives paused=%v, want %v", i, st.cfgManual, got, st.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "upload-mode.json"), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !open(true).Paused() {
		t.Error("a damaged mode file does not fall back to the config's mode")
	}
}
