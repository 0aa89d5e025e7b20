package edgeimpulse

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// TestWorkHonoursCancelAndPause: a user cancelling the sample being posted,
// or pausing uploads meanwhile, abandons the request at once; the session
// waiting for the first attempt hears which (not a network error); a
// cancelled sample is gone, a paused one is posted when uploads resume.
func TestWorkHonoursCancelAndPause(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	started := make(chan string, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The whole body first: the server notices the client going away
		// (and ends r's context) only once it reads past the body.
		_, _ = io.Copy(io.Discard, r.Body)
		started <- r.Header.Get("x-file-name")
		if hold.Load() {
			<-r.Context().Done() // held until the client gives up
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	l := postLink(t, srv.URL, "ei_key")
	sp := l.deps.Spool
	waiter := func(name string) (string, chan error) {
		it, err := sp.Put(spoolKind, uploadMeta{Path: "/api/training/data", FileName: name, ContentType: "application/json"}, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan error, 1)
		l.wmu.Lock()
		l.waiters[it.ID] = ch
		l.wmu.Unlock()
		return it.ID, ch
	}
	cancelled, cancelledRes := waiter("cancelled.json")
	paused, pausedRes := waiter("paused.json")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Work(ctx) }()
	defer func() {
		stop()
		<-done
	}()

	if got := <-started; got != "cancelled.json" {
		t.Fatalf("first post %q", got)
	}
	if err := sp.Cancel(cancelled); err != nil {
		t.Fatal(err)
	}
	if err := <-cancelledRes; err == nil || !strings.Contains(err.Error(), "cancelled on the device; the sample was removed") {
		t.Errorf("the waiting session heard %v", err)
	}
	if got := <-started; got != "paused.json" {
		t.Fatalf("second post %q", got)
	}
	if err := sp.SetPaused(true); err != nil {
		t.Fatal(err)
	}
	if err := <-pausedRes; err == nil || !strings.Contains(err.Error(), "uploading paused on the device") {
		t.Errorf("the waiting session heard %v", err)
	}
	if _, ok := sp.Get(paused); !ok {
		t.Fatal("the paused sample was dropped")
	}
	hold.Store(false)
	if err := sp.SetPaused(false); err != nil {
		t.Fatal(err)
	}
	agenttest.Eventually(t, "the paused sample posted after resuming", func() bool { return sp.Stats().Delivered == 1 })
	if got := <-started; got != "paused.json" {
		t.Errorf("third post %q, want paused.json again", got)
	}
	select {
	case n := <-started:
		t.Errorf("one more post than expected: %s", n)
	default:
	}
	if st := sp.Stats(); st.Items != 0 || st.Cancelled != 1 || st.Retries != 0 {
		t.Errorf("spool %+v", st)
	}
}
