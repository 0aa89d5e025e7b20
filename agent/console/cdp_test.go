package console_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chromiumPath is Debian's Chromium, which CI installs (the rtm link's
// browser test uses the same).
const chromiumPath = "/usr/bin/chromium"

// browser is a headless Chromium driven over the DevTools protocol on its
// --remote-debugging-pipe (JSON messages ending in NUL on fds 3 and 4), so
// no port and no client library is needed. One page is attached with a
// flat session; the page's errors (exceptions, console.error, failed
// loads, CSP refusals) are collected.
//
// Concurrency: call may be used from one goroutine at a time (the test's);
// the reader goroutine, which close stops and waits for, hands replies
// over by id.
type browser struct {
	t       testing.TB
	cmd     *exec.Cmd
	exited  chan error
	w       *os.File
	r       *os.File
	readerD chan struct{}
	stderr  *limitedBuf
	session string

	mu      sync.Mutex
	next    int
	pending map[int]chan cdpReply
	errs    []string
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

type cdpMessage struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	SessionID string          `json:"sessionId"`
	Params    json.RawMessage `json:"params"`
	cdpReply
}

// startBrowser starts Chromium and attaches to a new blank page, or skips
// the test when Chromium is not installed.
func startBrowser(t testing.TB) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping: %s not found (CI installs Debian's chromium; apt-get install -y chromium)", chromiumPath)
	}
	toChrome, ourW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ourR, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, w: ourW, r: ourR, exited: make(chan error, 1), readerD: make(chan struct{}),
		stderr: &limitedBuf{n: 64 << 10}, pending: map[int]chan cdpReply{}}
	b.cmd = exec.Command(chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-dev-shm-usage", "--disable-extensions",
		"--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
		"--user-data-dir="+t.TempDir(), "about:blank")
	b.cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fds 3 and 4
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toChrome.Close()
	fromChrome.Close()
	go func() { b.exited <- b.cmd.Wait() }()
	go b.read()
	t.Cleanup(b.close)

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.callBrowser("Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.callBrowser("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	b.session = att.SessionID
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		b.call(m, nil, nil)
	}
	return b
}

// close ends Chromium (its whole process group) and the reader.
func (b *browser) close() {
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) // our own process group only
	<-b.exited
	b.w.Close()
	<-b.readerD
	b.r.Close()
}

func (b *browser) read() {
	defer close(b.readerD)
	br := bufio.NewReaderSize(b.r, 1<<20)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				ch <- cdpReply{Error: &struct {
					Message string `json:"message"`
				}{"browser gone: " + err.Error()}}
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(raw[:len(raw)-1], &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch := b.pending[m.ID]; ch != nil {
				ch <- m.cdpReply
				delete(b.pending, m.ID)
			}
		} else if e := pageError(m.Method, m.Params); e != "" {
			b.errs = append(b.errs, e)
		}
		b.mu.Unlock()
	}
}

// pageError describes an event that means the page has a problem, or "".
func pageError(method string, params json.RawMessage) string {
	switch method {
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &p)
		return "exception: " + p.Details.Text + " " + p.Details.Exception.Description
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(params, &p)
		if p.Type != "error" && p.Type != "assert" {
			return ""
		}
		var parts []string
		for _, a := range p.Args {
			parts = append(parts, fmt.Sprint(a.Value)+a.Description)
		}
		return "console." + p.Type + ": " + strings.Join(parts, " ")
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(params, &p)
		if p.Entry.Level != "error" {
			return ""
		}
		return "log (" + p.Entry.Source + "): " + p.Entry.Text + " " + p.Entry.URL
	}
	return ""
}

// errors returns the page errors seen so far.
func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

func (b *browser) callBrowser(method string, params, result any) { b.send("", method, params, result) }

// call sends a command to the page and decodes its result into result.
func (b *browser) call(method string, params, result any) { b.send(b.session, method, params, result) }

func (b *browser) send(session, method string, params, result any) {
	b.t.Helper()
	if err := b.trySend(session, method, params, result); err != nil {
		b.t.Fatalf("%s: %v\nchromium stderr:\n%s", method, err, b.stderr.String())
	}
}

func (b *browser) trySend(session, method string, params, result any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpReply, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.w.Write(append(raw, 0)); err != nil {
		return err
	}
	var rep cdpReply
	select {
	case rep = <-ch:
	case err := <-b.exited:
		b.exited <- err
		return fmt.Errorf("chromium exited: %v", err)
	case <-time.After(60 * time.Second): // patience, not a measurement
		return errors.New("no answer in 60 s")
	}
	if rep.Error != nil {
		return errors.New(rep.Error.Message)
	}
	if result != nil {
		return json.Unmarshal(rep.Result, result)
	}
	return nil
}

// eval runs JavaScript in the page (awaiting a promise) and decodes its
// value into result.
func (b *browser) eval(js string, result any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.trySend(b.session, "Runtime.evaluate", map[string]any{"expression": js, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("%s %s", r.Exception.Text, r.Exception.Exception.Description)
	}
	if result != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, result)
	}
	return nil
}

// mustEval is eval that fails the test.
func (b *browser) mustEval(js string, result any) {
	b.t.Helper()
	if err := b.eval(js, result); err != nil {
		b.t.Fatalf("eval %q: %v", js, err)
	}
}

// waitFor polls the boolean expression js until it is true; what names
// the wait in the failure.
func (b *browser) waitFor(ctx context.Context, what, js string) {
	b.t.Helper()
	for {
		var ok bool
		err := b.eval(js, &ok)
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			var state string
			_ = b.eval(`document.body ? document.body.innerText.slice(0, 2000) : ''`, &state)
			b.t.Fatalf("waiting for %s: %v (last eval error: %v)\npage errors: %v\npage text:\n%s", what, ctx.Err(), err, b.errors(), state)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// viewport sets the page's size in CSS pixels (mobile: a phone's
// touch layout).
func (b *browser) viewport(width, height int, mobile bool) {
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height,
		"deviceScaleFactor": 1, "mobile": mobile}, nil)
}

// navigate loads url and waits for the page's load event.
func (b *browser) navigate(ctx context.Context, url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url}, nil)
	b.waitFor(ctx, "the page to load", `document.readyState === 'complete' && location.href === `+jsString(url))
}

// screenshot writes a PNG of the viewport, grown to the page's height (at
// most maxHeight), to path.
func (b *browser) screenshot(path string, width, maxHeight int, mobile bool) {
	b.t.Helper()
	var h int
	b.mustEval(`Math.ceil(document.documentElement.scrollHeight)`, &h)
	h = min(max(h, 200), maxHeight)
	b.viewport(width, h, mobile)
	var shot struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// limitedBuf keeps the first n bytes written to it.
type limitedBuf struct {
	mu sync.Mutex
	b  strings.Builder
	n  int
}

func (l *limitedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rest := l.n - l.b.Len(); rest > 0 {
		l.b.Write(p[:min(len(p), rest)])
	}
	return len(p), nil
}

func (l *limitedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
