package spool_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/reexec"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// The crash test runs the spool in a child process (this test binary re-run
// with childEnv set, through qemu-user when the tests run emulated), kills it with SIGKILL while an upload is in flight, and
// restarts it. The fake peer deduplicates by item id, as the real services do
// with their idempotency keys; the test proves every item that Put reported
// durable arrives intact, none is lost, and nothing unknown arrives.
const (
	childEnv   = "SPOOL_CRASH_CHILD" // "put+deliver" or "deliver"
	childDir   = "SPOOL_CRASH_DIR"
	childURL   = "SPOOL_CRASH_URL"
	childItems = 40
)

func payload(i int) string { return strings.Repeat(fmt.Sprintf("item-%03d;", i), 50+i) }

// crashChild is the child's main: optionally put items (printing each durable
// id), then deliver everything to the peer and exit 0 when the spool is empty.
func crashChild() int {
	s, err := spool.Open(os.Getenv(childDir), spool.Options{})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	if os.Getenv(childEnv) == "put+deliver" {
		for i := range childItems {
			it, err := s.Put("sample", map[string]int{"i": i}, strings.NewReader(payload(i)))
			if err != nil {
				fmt.Println("ERR", err)
				return 1
			}
			fmt.Println("PUT", it.ID) // only after Put returned: the item is durable
		}
	}
	fmt.Println("DELIVERING")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for s.Stats().Items > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	url := os.Getenv(childURL)
	_ = s.Deliver(ctx, func(ctx context.Context, it spool.Item, body *os.File) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", url, body)
		req.Header.Set("Idempotency-Key", it.ID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("peer: %s", resp.Status)
		}
		return nil
	}, retry.Policy{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond})
	fmt.Println("DONE")
	return 0
}

// peer is the idempotent fake: it keeps the first body per id and counts
// every delivery.
type peer struct {
	mu         sync.Mutex
	bodies     map[string]string
	deliveries int
	inFlight   chan struct{} // receives when request #blockAt starts
	blockAt    int
	requests   int
}

func (p *peer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests++
	n := p.requests
	p.mu.Unlock()
	if n == p.blockAt {
		// The upload in flight when the client is killed: never acknowledge
		// it (an implicit 200 could reach the client before SIGKILL, and a
		// peer must not ack what it did not store). Hold until the client
		// is gone.
		p.inFlight <- struct{}{}
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	id := r.Header.Get("Idempotency-Key")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deliveries++
	if prev, ok := p.bodies[id]; ok && prev != string(b) {
		http.Error(w, "same id, different body", http.StatusConflict)
		return
	}
	p.bodies[id] = string(b)
}

func startChild(t *testing.T, mode, dir, url string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := reexec.Command("-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDir+"="+dir, childURL+"="+url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out)
}

func TestKill9MidUploadDeliversEveryItemOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	p := &peer{bodies: map[string]string{}, inFlight: make(chan struct{}, 1), blockAt: 13}
	srv := httptest.NewServer(p)
	defer srv.Close()
	dir := t.TempDir()

	// Run 1: put everything, start delivering, die by SIGKILL mid-upload.
	cmd, out := startChild(t, "put+deliver", dir, srv.URL)
	put := map[string]bool{}
	for out.Scan() {
		line := out.Text()
		if id, ok := strings.CutPrefix(line, "PUT "); ok {
			put[id] = true
		}
		if line == "DELIVERING" {
			break
		}
	}
	go io.Copy(io.Discard, stdoutRest(out))
	select {
	case <-p.inFlight:
	case <-time.After(20 * time.Second):
		t.Fatal("no upload in flight")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	p.mu.Lock()
	before := len(p.bodies)
	p.mu.Unlock()
	if before == 0 || before >= childItems {
		t.Fatalf("kill landed at an uninteresting point: %d delivered", before)
	}

	// Run 2: a fresh process on the same directory finishes the job.
	cmd, out = startChild(t, "deliver", dir, srv.URL)
	var lines []string
	for out.Scan() {
		lines = append(lines, out.Text())
	}
	if err := cmd.Wait(); err != nil || lines[len(lines)-1] != "DONE" {
		t.Fatalf("restart: %v %v", err, lines)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(put) != childItems {
		t.Fatalf("%d items reported durable, want %d", len(put), childItems)
	}
	for id := range put {
		if _, ok := p.bodies[id]; !ok {
			t.Errorf("item %s lost", id)
		}
	}
	for id, body := range p.bodies {
		if !put[id] {
			t.Errorf("unknown item %s delivered", id)
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(body, ";", 2)[0], "item-"))
		if sum(body) != sum(payload(i)) {
			t.Errorf("item %s arrived damaged", id)
		}
	}
	t.Logf("%d items, %d delivered before the kill, %d deliveries in all (%d re-sent after the crash, deduplicated by id)",
		childItems, before, p.deliveries, p.deliveries-childItems)
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("spool dir not empty after delivery: %d entries", len(ents))
	}
}

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// stdoutRest adapts the rest of a scanner's stream for draining.
func stdoutRest(sc *bufio.Scanner) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for sc.Scan() {
		}
		pw.Close()
	}()
	return pr
}
