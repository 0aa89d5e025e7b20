package frameio_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/reexec"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// The kill -9 test re-executes the test binary as an uploader with these
// variables set; childMain runs it instead of the tests.
const (
	envChild  = "FRAMEIO_TEST_UPLOADER_DIR"
	envAPI    = "FRAMEIO_TEST_API"
	envSocket = "FRAMEIO_TEST_SOCKET"
	envID     = "FRAMEIO_TEST_CLIENT_ID"
	envSecret = "FRAMEIO_TEST_SECRET"
)

// uploaderDeps builds the link of the uploader process (and of its
// restarted replacement) over dir.
func uploaderLink(dir, api, socket, id, secret string, log *slog.Logger) (*frameio.Link, error) {
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	cfg := frameio.Config{APIURL: api, SocketURL: socket, ClientID: id, ClientSecret: secret}
	cfg.SetDefaults()
	cfg.Upload.Parallel = 1
	return frameio.New(cfg, transport.Deps{Name: "fio", Logger: log, StateDir: filepath.Join(dir, "state"),
		Spool: sp, Stats: &transport.Stats{}, Clock: clock.Real{}, Version: "1.0.0"}, fastOptions())
}

// childMain runs the uploader when the test binary was started as one. It
// never returns: the parent kills it with SIGKILL.
func childMain() bool {
	dir := os.Getenv(envChild)
	if dir == "" {
		return false
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	l, err := uploaderLink(dir, os.Getenv(envAPI), os.Getenv(envSocket), os.Getenv(envID), os.Getenv(envSecret), log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	_ = l.Work(context.Background())
	os.Exit(4)
	return true
}

// TestKillMidUploadResumes uploads a 5-part asset from a child process,
// kills it with SIGKILL while part 3 is in flight, restarts the uploader and
// checks that the fake got every part exactly once and the bytes intact.
func TestKillMidUploadResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test starts the test binary again as a child uploader and kills it")
	}
	fake := newFake(t, frameiotest.Options{})
	dir := t.TempDir()
	pairWithFake(t, fake, filepath.Join(dir, "state", frameio.TokenFileName))
	data := make([]byte, 5*4<<10) // five 4 KiB parts with fastOptions
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	it := putAsset(t, sp, "A001_C003.mov", "video/quicktime", time.Now(), data)
	fake.BlockPart(3)

	cmd := reexec.Command("-test.run=^$") // through the emulator under qemu-user
	cmd.Env = append(os.Environ(), envChild+"="+dir, envAPI+"="+fake.URL(), envSocket+"="+fake.SocketURL(),
		envID+"="+fake.ClientID(), envSecret+"="+fake.ClientSecret())
	stderr := &logxtest.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-fake.PartStarted():
		if n != 3 {
			t.Fatalf("blocked part %d", n)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("uploader never reached part 3:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	fake.BlockPart(0)

	// What the killed process left on disk: parts 1 and 2 done.
	sp2, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	left, ok := sp2.Get(it.ID)
	if !ok {
		t.Fatal("the asset left the spool before it was uploaded")
	}
	var prog struct {
		Parts int `json:"parts"`
	}
	if err := json.Unmarshal(left.Progress, &prog); err != nil || prog.Parts != 5 || mustJSON(left.Updates) != "[0,1]" {
		t.Fatalf("progress after kill = %s then %s (%v), want 5 parts, then parts 0 and 1 done", left.Progress, mustJSON(left.Updates), err)
	}

	// Restart the uploader (in process, so the leak check covers it).
	logs := &logxtest.Buffer{}
	l, err := uploaderLink(dir, fake.URL(), fake.SocketURL(), fake.ClientID(), fake.ClientSecret(),
		slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "the asset to complete", func() bool {
		a := fake.Assets()
		return len(a) == 1 && a[0].Complete
	})
	a := fake.Assets()[0]
	if mustJSON(a.PutCounts) != "[1,1,1,1,1]" {
		t.Errorf("PUTs per part = %v, want each part once", a.PutCounts)
	}
	if a.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("checksum mismatch")
	}
	if fake.Stats().Creates != 1 {
		t.Errorf("creates = %d, want 1 (resumed, not re-created)", fake.Stats().Creates)
	}
	checkNoSecrets(t, logs)
	checkNoSecrets(t, stderr)
}
