package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/console"
	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// steerFixture is newFixture's console with the agent's uploads and
// Frame.io links given to it, as agent.go does.
func steerFixture(t *testing.T, listen net.Addr, uploads func() []console.UploadQueue, fio func() []console.FrameIOLink) *fixture {
	t.Helper()
	dir := t.TempDir()
	if listen == nil {
		listen = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8780}
	}
	f := &fixture{t: t, done: make(chan struct{}), tokenF: filepath.Join(dir, "token")}
	f.hub = agenttest.Hub(t, nil, synthetics(t)...)
	cfg, err := config.Parse("test.yaml", []byte("device: {id: d1, name: bench, type: TEST}\nstate_dir: "+dir+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	f.links = []status.LinkStatus{{Name: "fio", Kind: "frameio", State: "up", Since: time.Now()}}
	con, err := console.New(console.Options{Hub: f.hub, Snapshot: f.snapshot, Config: f.config,
		Secrets: redact.New(), Listen: listen, TokenFile: f.tokenF, CaptureDir: filepath.Join(dir, "captures"),
		Version: "test", PollPeriod: 20 * time.Millisecond, Uploads: uploads, FrameIO: fio})
	if err != nil {
		t.Fatal(err)
	}
	f.con = con
	srv := status.New(f.snapshot, nil)
	srv.Mount(con.Handler(), console.Prefixes...)
	f.srv = httptest.NewServer(srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		defer close(f.done)
		_ = con.Run(ctx)
	}()
	t.Cleanup(f.stop)
	return f
}

// uploadFixture is a console over one link "fio" whose spool is in dir.
func uploadFixture(t *testing.T, listen net.Addr) (*fixture, *spool.Spool, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := steerFixture(t, listen, func() []console.UploadQueue {
		return []console.UploadQueue{{Link: "fio", Kind: "frameio", Spool: sp}}
	}, nil)
	return f, sp, dir
}

func put(t *testing.T, sp *spool.Spool, meta any, body string) spool.Item {
	t.Helper()
	it, err := sp.Put("frameio-asset", meta, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func queueOf(t *testing.T, f *fixture) console.UploadQueueView {
	t.Helper()
	code, body := f.call("GET", "/api/uploads/fio", "")
	if code != 200 {
		t.Fatalf("GET /api/uploads/fio: %d %s", code, body)
	}
	var v console.UploadQueueView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestUploadsQueueAndActions: the queue lists each item (name, size, age,
// attempts) without anything of its metadata or progress record but the
// name; pause and resume switch the mode the spool keeps; send now marks
// the item to go next; cancel removes one item, cancel all the rest, both
// durably (a spool opened again on the directory, as after a restart,
// holds nothing) and counted; unknown links and items are 404s.
func TestUploadsQueueAndActions(t *testing.T) {
	f, sp, dir := uploadFixture(t, nil)
	a := put(t, sp, map[string]string{"name": "clip\x1b]0;pwned\a.mov", "token_file": "/secret/path"}, "aaaa")
	b := put(t, sp, map[string]string{"file_name": "sample.json"}, "bb")
	put(t, sp, nil, "c")
	if err := sp.SetProgress(a.ID, map[string]any{"urls": []string{"https://s3.example/part1?X-Amz-Signature=deadbeef"}}); err != nil {
		t.Fatal(err)
	}
	_, raw := f.call("GET", "/api/uploads", "")
	if strings.Contains(raw, "X-Amz-Signature") || strings.Contains(raw, "/secret/path") || strings.ContainsAny(raw, "\x1b\a") {
		t.Errorf("the queue shows more than the items' names:\n%s", raw)
	}
	v := queueOf(t, f)
	var names []string
	for _, it := range v.Queue {
		names = append(names, it.Name)
	}
	if v.Link != "fio" || v.Mode != "auto" || v.Items != 3 || v.Bytes != 7 || v.InFlight != nil ||
		strings.Join(names, ",") != "clip]0;pwned.mov,sample.json,frameio-asset" || v.Queue[0].Size != 4 || v.Queue[0].Sent != -1 {
		t.Errorf("queue: %+v", v)
	}

	if code, body := f.call("POST", "/api/uploads/fio/pause", "", csrf...); code != 200 || !strings.Contains(body, `"mode": "manual"`) {
		t.Errorf("pause: %d %s", code, body)
	}
	if !sp.Paused() {
		t.Error("the spool is not paused")
	}
	if code, body := f.call("POST", "/api/uploads/fio/items/"+b.ID+"/retry", "", csrf...); code != 200 || !queueOf(t, f).Queue[1].Requested {
		t.Errorf("send now: %d %s", code, body)
	}
	if code, body := f.call("POST", "/api/uploads/fio/items/"+a.ID+"/cancel", "", csrf...); code != 200 {
		t.Errorf("cancel one: %d %s", code, body)
	}
	if v := queueOf(t, f); v.Items != 2 || v.Cancelled != 1 || v.Queue[0].ID != b.ID {
		t.Errorf("after cancelling one: %+v", v)
	}
	for _, p := range []string{"/api/uploads/fio/items/" + a.ID + "/cancel", "/api/uploads/fio/items/nope/retry", "/api/uploads/other/pause"} {
		if code, _ := f.call("POST", p, "", csrf...); code != 404 {
			t.Errorf("POST %s: %d, want 404", p, code)
		}
	}
	if code, _ := f.call("GET", "/api/uploads/other", ""); code != 404 {
		t.Errorf("GET an unknown link's queue: %d", code)
	}
	if code, body := f.call("POST", "/api/uploads/fio/resume", "", csrf...); code != 200 || !strings.Contains(body, `"mode": "auto"`) {
		t.Errorf("resume: %d %s", code, body)
	}
	if code, body := f.call("POST", "/api/uploads/fio/cancel", "", csrf...); code != 200 || !strings.Contains(body, `"cancelled": 3`) {
		t.Errorf("cancel all: %d %s", code, body)
	}
	re, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if items := re.Items(); len(items) != 0 {
		t.Errorf("after a restart the spool holds %d items; cancelled ones must stay gone", len(items))
	}
}

// TestUploadsInFlight: the item being sent is shown with its progress, and
// cancelling it from the console stops its delivery and removes it.
func TestUploadsInFlight(t *testing.T) {
	f, sp, _ := uploadFixture(t, nil)
	it := put(t, sp, map[string]string{"name": "big.mov"}, strings.Repeat("x", 1000))
	causes := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sp.Deliver(ctx, func(ctx context.Context, it spool.Item, body *os.File) error {
			sp.ReportSent(it.ID, 400)
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		}, retry.Policy{Min: time.Hour})
	}()
	defer func() {
		cancel()
		<-done
	}()
	agenttest.Eventually(t, "the item in flight with its progress", func() bool {
		v := queueOf(t, f)
		return v.InFlight != nil && v.InFlight.ID == it.ID && v.InFlight.Sent == 400 && v.Queue[0].InFlight
	})
	if code, body := f.call("POST", "/api/uploads/fio/items/"+it.ID+"/cancel", "", csrf...); code != 200 {
		t.Fatalf("cancel in flight: %d %s", code, body)
	}
	if c := <-causes; !errors.Is(c, spool.ErrCancelled) {
		t.Errorf("the delivery ended with %v, want ErrCancelled", c)
	}
	if v := queueOf(t, f); v.Items != 0 || v.Cancelled != 1 || v.Retries != 0 {
		t.Errorf("after cancelling the item in flight: %+v", v)
	}
}

// TestUploadsAccess: the uploads view and actions follow the console's
// rules (the access wrappers): on loopback an action needs the CSRF pair
// (or the token); beyond loopback views and actions need the token.
func TestUploadsAccess(t *testing.T) {
	f, sp, _ := uploadFixture(t, nil)
	it := put(t, sp, nil, "x")
	if code, _ := f.call("POST", "/api/uploads/fio/pause", ""); code != 403 {
		t.Errorf("pause without CSRF on loopback: %d, want 403", code)
	}
	if code, _ := f.call("POST", "/api/uploads/fio/items/"+it.ID+"/cancel", "", "Origin", "http://evil.example", csrf[0], csrf[1], csrf[2], csrf[3]); code != 403 {
		t.Errorf("cancel from another origin: %d, want 403", code)
	}
	if sp.Paused() || sp.Stats().Items != 1 {
		t.Fatal("a refused action changed the spool")
	}

	g, gsp, _ := uploadFixture(t, beyondLoopback)
	git := put(t, gsp, nil, "y")
	bearer := []string{"Authorization", "Bearer " + g.token()}
	for _, tc := range []struct {
		method, path string
		hdr          []string
		want         int
	}{
		{"GET", "/api/uploads", nil, 401},
		{"GET", "/api/frameio", nil, 401},
		{"GET", "/api/uploads", bearer, 200},
		{"POST", "/api/uploads/fio/items/" + git.ID + "/retry", csrf, 401},
		{"POST", "/api/uploads/fio/cancel", csrf, 401},
		{"POST", "/api/frameio/fio/pair", csrf, 401},
		{"POST", "/api/uploads/fio/pause", bearer, 200},
	} {
		if code, body := g.call(tc.method, tc.path, "", tc.hdr...); code != tc.want {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.path, code, tc.want, strings.TrimSpace(body))
		}
	}
	if !gsp.Paused() || gsp.Stats().Items != 1 {
		t.Errorf("beyond loopback: paused %v, items %d", gsp.Paused(), gsp.Stats().Items)
	}
}

// TestPageShowsUploads: the page renders the uploads card from the spool
// and loads its script and style from /console/, the scripts after
// console.js.
func TestPageShowsUploads(t *testing.T) {
	f, sp, _ := uploadFixture(t, nil)
	put(t, sp, map[string]string{"name": "still_0001.jpg"}, "jpeg")
	resp := f.req("GET", "/", "")
	defer resp.Body.Close()
	page := readAll(t, resp)
	for _, want := range []string{`data-upload="fio"`, `still_0001.jpg`, `<script src="/console/uploads.js" defer></script>`,
		`<link rel="stylesheet" href="/console/uploads.css">`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// uploads.js and pairing.js use console.js's helpers (window.edgeConsole):
	// all three are deferred, so they run in the order the page names them.
	core := strings.Index(page, `<script src="/console/console.js" defer></script>`)
	for _, js := range []string{"uploads.js", "pairing.js"} {
		if i := strings.Index(page, `<script src="/console/`+js+`" defer></script>`); core < 0 || i < core {
			t.Errorf("the page loads %s (at %d) before console.js (at %d)", js, i, core)
		}
	}
	for _, path := range []string{"/console/uploads.js", "/console/uploads.css", "/console/pairing.js", "/console/pairing.css"} {
		if code, _ := f.call("GET", path, ""); code != 200 {
			t.Errorf("GET %s: %d", path, code)
		}
	}
}
