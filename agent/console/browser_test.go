package console_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/sim"
	"github.com/edge-agent/edge-agent/internal/faultproxy"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
)

// EnvScreenshots names the directory the browser test writes its
// screenshots to (scripts/test.sh sets it and prints it, so CI's log says
// where they are); unset, they go to the test's temporary directory.
const EnvScreenshots = "CONSOLE_SCREENSHOTS"

// demoRig is `edge-agent demo` in this process: the fake clouds, the
// demo's generated config with its synthetic sensors, and the agent with
// its console, except that the edgeimpulse link reaches its fake through a
// proxy the test can refuse connections at (the fake "stopped").
type demoRig struct {
	url   string // the console, http://127.0.0.1:port
	file  string // the config file a reload reads
	proxy *faultproxy.Proxy
	agent *agent.Agent
}

func startDemo(t testing.TB) *demoRig {
	t.Helper()
	clouds, err := sim.Start("127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clouds.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, path, err := clouds.WriteDemoConfig(t.TempDir(), config.Status{Listen: ln.Addr().String()})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	rig := &demoRig{url: "http://" + ln.Addr().String(), file: path}
	// load reads the file as the command does (device resolved), with the
	// edgeimpulse link sent through the proxy: a reload of the same file
	// changes nothing.
	var proxied string
	load := func() (*config.Config, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		cfg.Resolve(config.HostMachine(nil))
		for i := range cfg.Links {
			if ei, ok := cfg.Links[i].Block.(*edgeimpulse.Config); ok && proxied != "" {
				ei.RemoteMgmtURL = proxied
			}
		}
		return cfg, nil
	}
	for i := range cfg.Links {
		ei, ok := cfg.Links[i].Block.(*edgeimpulse.Config)
		if !ok {
			continue
		}
		u, err := url.Parse(ei.RemoteMgmtURL)
		if err != nil {
			t.Fatal(err)
		}
		if rig.proxy, err = faultproxy.New(faultproxy.Options{Target: u.Host}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rig.proxy.Close() })
		u.Host = rig.proxy.Addr()
		proxied = u.String()
	}
	if rig.proxy == nil {
		t.Fatal("the demo has no edgeimpulse link")
	}
	if cfg, err = load(); err != nil {
		t.Fatal(err)
	}
	if rig.agent, err = agent.New(cfg, agent.Options{StatusListener: ln, Version: "browser-test", LoadConfig: load}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rig.agent.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return rig
}

// screenshotDir is EnvScreenshots, created, or a temporary directory.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv(EnvScreenshots)
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// frameSig draws the camera preview's current frame on a canvas and
// returns a digest of its pixels ("" until a frame is shown).
const frameSig = `(() => {
  const img = document.querySelector('#camera figure[data-live="mjpeg"] img.preview');
  if (!img || !img.src.includes('/mjpeg') || !img.complete || img.naturalWidth < 2) return '';
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) | 0;
  return img.naturalWidth + 'x' + img.naturalHeight + ':' + h;
})()`

// canvasSig is a digest of a canvas's pixels.
func canvasSig(selector string) string {
	return `(() => { const c = document.querySelector(` + jsString(selector) + `); return c ? c.toDataURL().length + ':' + c.toDataURL().slice(-64) : ''; })()`
}

// TestBrowserConsole opens the console of the demo in headless Chromium
// and checks what a person would: the page loads with no errors (no
// exception, no console error, no failed load, no CSP refusal), every link
// card comes up and turns to backoff when its fake stops and back to up
// when it returns, the camera preview shows changing frames, the motion
// plot moves, the level meter shows the synthetic tone (-9 dBFS), a
// capture can be made and seen, the live views let their sensors go when
// the tab changes, and the page fits 1280 px and 360 px without
// scrolling sideways. Screenshots of the main views go to EnvScreenshots.
func TestBrowserConsole(t *testing.T) {
	b := startBrowser(t) // skips without Chromium
	rig := startDemo(t)
	dir := screenshotDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute) // patience for a loaded machine
	defer cancel()
	shot := func(name string, width int, mobile bool) {
		b.screenshot(filepath.Join(dir, name+".png"), width, 2000, mobile)
		b.viewport(width, map[bool]int{true: 740, false: 900}[mobile], mobile)
	}
	tab := func(name string) {
		b.mustEval(`document.querySelector('#tabs a[href="#`+name+`"]').click()`, nil)
		b.waitFor(ctx, "the "+name+" tab", `document.querySelector('#`+name+`').classList.contains('active')`)
	}

	b.viewport(1280, 900, false)
	b.navigate(ctx, rig.url+"/")
	b.waitFor(ctx, "every link card to be up",
		`(() => { const c = [...document.querySelectorAll('#links article.link')]; return c.length === 4 && c.every(a => a.dataset.state === 'up'); })()`)
	var width int
	b.mustEval(`document.documentElement.scrollWidth`, &width)
	if width > 1280 {
		t.Errorf("the page is %d px wide at 1280", width)
	}
	shot("overview", 1280, false)

	// The edgeimpulse fake stops answering: its card turns to backoff with
	// the error, then back to up when it answers again.
	rig.proxy.Refuse(true)
	rig.proxy.Reset()
	b.waitFor(ctx, "the edgeimpulse card to show backoff", `document.querySelector('article.link[data-link="edgeimpulse"]').dataset.state === 'backoff'`)
	var card string
	b.mustEval(`document.querySelector('article.link[data-link="edgeimpulse"]').innerText`, &card)
	if !strings.Contains(card, "backoff") || !strings.Contains(card, "History") {
		t.Errorf("the backoff card says:\n%s", card)
	}
	b.mustEval(`document.querySelector('article.link[data-link="edgeimpulse"] details').open = true`, nil)
	rig.proxy.Refuse(false)
	b.waitFor(ctx, "the edgeimpulse card to be up again", `document.querySelector('article.link[data-link="edgeimpulse"]').dataset.state === 'up'`)
	b.mustEval(`document.querySelector('article.link[data-link="edgeimpulse"] details ol').innerText`, &card)
	if !strings.Contains(card, "backoff") || !strings.Contains(card, "up") {
		t.Errorf("the history does not show the outage:\n%s", card)
	}
	shot("links-history", 1280, false)

	// systemctl reload: the overview says what it did, and why a broken
	// file was refused.
	if _, err := rig.agent.Reload(ctx); err != nil {
		t.Fatalf("reload of the same file: %v", err)
	}
	b.waitFor(ctx, "the reload line", `/^Last config reload, .*: nothing changed$/.test(document.querySelector('#reload').textContent)`)
	if err := os.WriteFile(rig.file, []byte("links:\n  - {name: x, kind: nope}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.agent.Reload(ctx); err == nil {
		t.Fatal("a broken file was reloaded")
	}
	b.waitFor(ctx, "the refused reload", `(() => { const p = document.querySelector('#reload'); return !p.hidden && p.classList.contains('error') && /refused, nothing changed: .*demo-config.yaml:2/.test(p.textContent); })()`)
	shot("reload-refused", 1280, false)

	// Camera: the preview shows frames, and they change.
	tab("camera")
	var first, next string
	b.waitFor(ctx, "a camera frame", frameSig+` !== ''`)
	b.mustEval(frameSig, &first)
	if !strings.HasPrefix(first, "320x240:") {
		t.Errorf("the preview shows %s, want the demo camera's 320x240", first)
	}
	b.waitFor(ctx, "the next camera frame", frameSig+` !== `+jsString(first))
	b.mustEval(frameSig, &next)
	b.waitFor(ctx, "the measured frame rate", `/[0-9.]+ fps measured/.test(document.querySelector('#camera figure[data-sensor="cam"] .fps').textContent)`)
	shot("camera", 1280, false)

	// Signals: the plot moves and the meter shows the tone.
	tab("signals")
	plot := `#signals figure[data-sensor="accel"] canvas`
	b.waitFor(ctx, "the motion plot to draw", `+(document.querySelector('#signals figure[data-sensor="accel"]').dataset.updates || 0) > 5`)
	var p1 string
	b.mustEval(canvasSig(plot), &p1)
	b.waitFor(ctx, "the motion plot to move", canvasSig(plot)+` !== `+jsString(p1))
	b.waitFor(ctx, "the level meter to show the tone",
		`(() => { const f = document.querySelector('#signals figure[data-sensor="mic"]'); return +(f.dataset.updates || 0) > 5 && Math.abs(+f.dataset.rms + 9) < 1; })()`)
	var bar string
	b.mustEval(`document.querySelector('#signals figure[data-sensor="mic"] .bar').style.width`, &bar)
	if bar != "85%" {
		t.Errorf("the level bar is %q wide, want 85%% (-9 dBFS on a 60 dB scale)", bar)
	}
	// Four seconds on the plot and the strip, so the screenshot shows them.
	b.waitFor(ctx, "four seconds of signals",
		`+document.querySelector('#signals figure[data-sensor="accel"]').dataset.span >= 4000 && +document.querySelector('#signals figure[data-sensor="mic"]').dataset.columns >= 400`)
	shot("signals", 1280, false)

	// The camera preview was let go when its tab was left.
	b.waitFor(ctx, "the preview to let the camera go (two feeds left)", `fetch('/api/status').then(r => r.json()).then(s => s.console.viewers === 2)`)

	// Capture: one second of the accelerometer, plotted from its CSV.
	tab("capture")
	b.mustEval(`(() => { const f = document.querySelector('#capture-form'); f.elements.sensor.value = 'accel'; f.elements.sensor.onchange(); f.elements.seconds.value = '1'; f.querySelector('button').click(); })()`, nil)
	b.waitFor(ctx, "the capture to finish", `(() => { const c = document.querySelector('#captures article.capture'); return c && c.dataset.state === 'done' && !!c.querySelector('canvas'); })()`)
	var capText string
	b.mustEval(`document.querySelector('#captures article.capture').innerText`, &capText)
	if !strings.Contains(capText, "100 rows") || !strings.Contains(capText, "Download accel-") {
		t.Errorf("the capture card says:\n%s", capText)
	}
	shot("capture", 1280, false)

	tab("config")
	var cfgText string
	b.mustEval(`document.querySelector('#config-yaml').textContent`, &cfgText)
	if !strings.Contains(cfgText, "[REDACTED]") || !strings.Contains(cfgText, "remote_mgmt_url") {
		t.Errorf("the config view:\n%s", cfgText)
	}
	shot("config", 1280, false)
	b.waitFor(ctx, "no live view left", `fetch('/api/status').then(r => r.json()).then(s => s.console.viewers === 0)`)

	// A phone on the same Wi-Fi: 360 px, nothing wider than the screen.
	b.viewport(360, 740, true)
	b.navigate(ctx, rig.url+"/#overview")
	b.waitFor(ctx, "the cards at 360 px", `document.querySelectorAll('#links article.link').length === 4`)
	for _, view := range []string{"overview", "camera", "signals"} {
		tab(view)
		if view == "camera" {
			b.waitFor(ctx, "a camera frame at 360 px", frameSig+` !== ''`)
		}
		if view == "signals" {
			b.waitFor(ctx, "the plot at 360 px", `+(document.querySelector('#signals figure[data-sensor="accel"]').dataset.updates || 0) > 3`)
		}
		var wide []string
		b.mustEval(`[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 361 && !e.closest('.scroll') && !e.closest('nav')).map(e => e.tagName + '.' + e.className).slice(0, 5)`, &wide)
		b.mustEval(`document.documentElement.scrollWidth`, &width)
		if width > 360 || len(wide) > 0 {
			t.Errorf("%s at 360 px: page %d px wide; too wide: %v", view, width, wide)
		}
		shot("phone-"+view, 360, true)
	}

	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("console screenshots in %s", dir)
	fmt.Fprintf(os.Stderr, "console screenshots: %s\n", dir)
}
