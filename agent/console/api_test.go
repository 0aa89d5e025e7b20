package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/console"
	"github.com/edge-agent/edge-agent/agent/status"
)

// TestPageServesTheViews: the page at / is the console, rendered from the
// snapshot (links, the sensor table, the config) with its script and style
// from /console/ under a CSP that allows no inline code; /status and
// /metrics stay the status server's.
func TestPageServesTheViews(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	resp := f.req("GET", "/", "")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %s", resp.Status)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	var csrfCookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "edge_agent_csrf" {
			csrfCookie = c
		}
	}
	if csrfCookie == nil || !csrfCookie.HttpOnly || csrfCookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("the page set no HttpOnly SameSite=Strict CSRF cookie: %v", resp.Cookies())
	}
	body := readAll(t, resp)
	for _, want := range []string{
		`<meta name="csrf-token" content="` + csrfCookie.Value + `">`,
		`data-link="studio"`, `<table>`, `data-sensor="accel"`, `data-live="mjpeg" data-src="/api/sensors/cam/mjpeg"`,
		`data-live="plot" data-src="/api/sensors/accel/live"`, `data-live="level" data-src="/api/sensors/mic/live"`,
		`No preview: an H.264 source is not decoded on the board; the preview shows the still camera cam.`,
		`<script src="/console/console.js" defer></script>`, `id="config-yaml"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, " onclick=") {
		t.Errorf("page has inline script or style, which its CSP refuses")
	}
	for path, ctype := range map[string]string{"/console/console.js": "text/javascript", "/console/console.css": "text/css", "/console/icon.svg": "image/svg+xml"} {
		r := f.req("GET", path, "")
		r.Body.Close()
		if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %s %q", path, r.Status, r.Header.Get("Content-Type"))
		}
	}
	if code, body := f.call("GET", "/status", ""); code != 200 || !strings.Contains(body, `"links"`) {
		t.Errorf("/status: %d", code)
	}
	if code, body := f.call("GET", "/api/nothing", ""); code != 404 || !strings.Contains(body, `"error"`) {
		t.Errorf("/api/nothing: %d %s", code, body)
	}
}

func readAll(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func getJSON(t *testing.T, f *fixture, path string, v any) {
	t.Helper()
	code, body := f.call("GET", path, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// TestSensorsDescribeTheirLiveViews: each class gets its view; an H.264
// source names the still camera shown instead, or says there is none.
func TestSensorsDescribeTheirLiveViews(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var list []console.SensorView
	getJSON(t, f, "/api/sensors", &list)
	want := map[string][2]string{
		"accel": {"plot", "/api/sensors/accel/live"}, "mic": {"level", "/api/sensors/mic/live"},
		"cam": {"mjpeg", "/api/sensors/cam/mjpeg"}, "video": {"", ""},
	}
	if len(list) != len(want) {
		t.Fatalf("%d sensors: %+v", len(list), list)
	}
	for _, s := range list {
		if w := want[s.Name]; s.Live != w[0] || s.LiveURL != w[1] {
			t.Errorf("%s: live %q at %q, want %q at %q", s.Name, s.Live, s.LiveURL, w[0], w[1])
		}
	}
	var v console.SensorView
	getJSON(t, f, "/api/sensors/video", &v)
	if v.Format != "H.264" || v.Stills != "cam" || !strings.Contains(v.NoLive, "still camera cam") {
		t.Errorf("video: %+v", v)
	}
	getJSON(t, f, "/api/sensors/cam", &v)
	if v.Width != 320 || v.Height != 240 || v.Rate != 10 || v.Format != "JPEG" {
		t.Errorf("cam: %+v", v)
	}
	if code, _ := f.call("GET", "/api/sensors/nope", ""); code != 404 {
		t.Errorf("unknown sensor: %d", code)
	}

	only := newFixture(t, fixtureOpts{sources: synthetics(t)[3:]})
	var alone console.SensorView
	getJSON(t, only, "/api/sensors/video", &alone)
	if alone.Stills != "" || !strings.Contains(alone.NoLive, "no still camera") {
		t.Errorf("video without stills: %+v", alone)
	}
}

// TestLinksCarryTheirHistory: /api/links is the snapshot's links with the
// history the poller kept, oldest first.
func TestLinksCarryTheirHistory(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	t0 := time.Now()
	f.setLinks(status.LinkStatus{Name: "studio", Kind: "edgeimpulse", State: "up", Since: t0})
	var links []console.LinkView
	getJSON(t, f, "/api/links", &links)
	f.setLinks(status.LinkStatus{Name: "studio", Kind: "edgeimpulse", State: "backoff", Since: t0.Add(time.Second),
		LastError: "dial tcp: connection refused", Reconnects: 1})
	getJSON(t, f, "/api/links", &links)
	var one console.LinkView
	getJSON(t, f, "/api/links/studio", &one)
	if len(links) != 1 || one.State != "backoff" {
		t.Fatalf("links %+v, one %+v", links, one)
	}
	ev := one.Events
	if len(ev) < 2 || ev[len(ev)-1].State != "backoff" || ev[len(ev)-1].Error != "dial tcp: connection refused" ||
		!ev[len(ev)-1].At.Equal(t0.Add(time.Second)) || ev[len(ev)-2].State != "up" {
		t.Errorf("events %+v", ev)
	}
	if code, _ := f.call("GET", "/api/links/nope", ""); code != 404 {
		t.Errorf("unknown link: %d", code)
	}
	var st console.StatusView
	getJSON(t, f, "/api/status", &st)
	if st.Device.Name != "bench" || st.Console.MaxViewers != console.MaxViewers || len(st.Links) != 1 {
		t.Errorf("/api/status %+v", st)
	}
}

// TestReloadShown: the overview says what the last reload did, or why the
// file was refused, on the page as served and through /api/reload (null
// before any reload).
func TestReloadShown(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	if code, body := f.call("GET", "/api/reload", ""); code != 200 || strings.TrimSpace(body) != "null" {
		t.Errorf("/api/reload before any: %d %s", code, body)
	}
	if _, body := f.call("GET", "/", ""); !strings.Contains(body, `<p id="reload" hidden></p>`) {
		t.Errorf("the page shows a reload before any")
	}
	at := time.Now().Add(-time.Minute)
	f.setReload(&status.ReloadStatus{At: at, Links: status.ReloadChanges{Restarted: []string{"studio"}},
		Inference: status.ReloadChanges{Restarted: []string{"people"}}, Applied: []string{"rules"}, NeedsRestart: []string{"status"}})
	var v console.ReloadView
	getJSON(t, f, "/api/reload", &v)
	want := "1 link restarted, 1 model restarted; applied: rules; at the next restart: status"
	if !v.At.Equal(at) || v.Refused || v.Summary != want {
		t.Errorf("/api/reload = %+v", v)
	}
	if _, body := f.call("GET", "/", ""); !strings.Contains(body, `<p id="reload">Last config reload, <span data-ago=`) || !strings.Contains(body, ": "+want+"</p>") {
		t.Errorf("the page does not show the reload")
	}
	f.setReload(&status.ReloadStatus{At: at, Error: "config.yaml:4: links[0].kind: unknown kind <x>"})
	getJSON(t, f, "/api/reload", &v)
	if !v.Refused || v.Summary != "refused, nothing changed: config.yaml:4: links[0].kind: unknown kind <x>" {
		t.Errorf("/api/reload = %+v", v)
	}
	if _, body := f.call("GET", "/", ""); !strings.Contains(body, `<p id="reload" class="error">`) || !strings.Contains(body, "unknown kind &lt;x&gt;") {
		t.Errorf("the page does not show the refused reload, escaped")
	}
}

// TestConfigViewMasksSecrets: inline secrets by their key, secrets read
// from files by their value wherever they appear, URL passwords and query
// values; the file's path is shown.
func TestConfigViewMasksSecrets(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("ei_file_secret_0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	yaml := `device: {id: d1, name: bench, type: TEST}
state_dir: ` + dir + `/state
links:
  - name: studio
    kind: edgeimpulse
    edgeimpulse: {api_key_file: ` + keyFile + `, remote_mgmt_url: "wss://user:hunter2pass@remote.example/?key=qs_secret_value", sensors: [x]}
  - name: cam
    kind: camserver
    camserver: {url: "https://cams.example", user: u, password: "inline-password-42", stream: {sensor: x}}
sensors:
  - {name: x, kind: synthetic, synthetic: {signal: camera}}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOpts{})
	f.cfg = cfg
	var v console.ConfigView
	getJSON(t, f, "/api/config", &v)
	if v.File != path {
		t.Errorf("file %q, want %q", v.File, path)
	}
	for _, secret := range []string{"ei_file_secret_0123456789", "hunter2pass", "qs_secret_value", "inline-password-42"} {
		if strings.Contains(v.YAML, secret) {
			t.Errorf("the config view shows %q:\n%s", secret, v.YAML)
		}
	}
	for _, keep := range []string{"api_key_file: " + keyFile, "user: u", "remote.example", "[REDACTED]"} {
		if !strings.Contains(v.YAML, keep) {
			t.Errorf("the config view lacks %q:\n%s", keep, v.YAML)
		}
	}
	_, page := f.call("GET", "/", "")
	if strings.Contains(page, "inline-password-42") || strings.Contains(page, "ei_file_secret_0123456789") {
		t.Errorf("the page shows a secret")
	}
}
