package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/transport/frameio"
)

// TestTrustInsecureSkipVerifyWarned: insecure_skip_verify: true turns off
// what protects every credential a link sends; only camserver said so, and
// only together with ca_file. Every occurrence is a warning now.
func TestTrustInsecureSkipVerifyWarned(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := strings.ReplaceAll(`
sensors:
  - {name: cam, kind: synthetic, synthetic: {signal: camera}}
  - {name: m, kind: synthetic, synthetic: {signal: motion}}
links:
  - name: ei
    kind: edgeimpulse
    edgeimpulse: {api_key_file: SECRET, sensors: [m], insecure_skip_verify: true}
  - name: rtm
    kind: rtm
    rtm: {url: "wss://x/io", token_file: SECRET, client_id: c, video: cam, insecure_skip_verify: true}
  - name: fio
    kind: frameio
    frameio: {client_id: c, client_secret_file: SECRET, insecure_skip_verify: true}
  - name: cs
    kind: camserver
    camserver: {url: "https://cs", user: u, password_file: SECRET, insecure_skip_verify: true}
  - name: cs-off
    kind: camserver
    camserver: {url: "https://cs", user: u, password_file: SECRET, insecure_skip_verify: false}
`, "SECRET", secret)
	cfg, err := config.Parse("c.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(cfg.Warnings, "\n")
	for _, path := range []string{"links[0].edgeimpulse", "links[1].rtm", "links[2].frameio", "links[3].camserver"} {
		want := path + ".insecure_skip_verify: TLS certificate verification is off"
		if !strings.Contains(all, want) {
			t.Errorf("no warning %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "links[4]") {
		t.Errorf("insecure_skip_verify: false warned:\n%s", all)
	}
	if !strings.Contains(all, "c.yaml:8: links[0].edgeimpulse.insecure_skip_verify") {
		t.Errorf("the warning does not name file:line:\n%s", all)
	}
}

// TestTrustInlineSecretInReadableConfig: a secret written inline in a
// config file that the group or others can read is readable by every local
// user; the .deb used to ship config.yaml 0644. Load warns, unless the group
// is the agent's own (0640 root:edge-agent as shipped).
func TestTrustInlineSecretInReadableConfig(t *testing.T) {
	const yaml = "sensors:\n  - {name: m, kind: synthetic, synthetic: {}}\nlinks:\n  - name: s\n    kind: edgeimpulse\n" +
		"    edgeimpulse: {api_key: inline-s3cret, sensors: [m]}\n"
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{
		{0o644, true},  // others read it
		{0o604, true},  // others read it
		{0o640, false}, // the group is this process's own (the agent's, as shipped)
		{0o600, false},
	} {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(yaml), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil { // past the umask
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(cfg.Warnings, "\n")
		got := strings.Contains(all, "links[0].edgeimpulse.api_key: secret given inline in a config file readable by group or others")
		if got != tc.warn {
			t.Errorf("mode %04o: warned %v, want %v:\n%s", tc.mode, got, tc.warn, all)
		}
		if strings.Contains(all, "inline-s3cret") {
			t.Errorf("mode %04o: a warning holds the secret", tc.mode)
		}
	}
}

// TestTrustStatusBeyondLoopbackWarned: the status server answers anyone who
// can reach it; that was only said when the profiler was on.
func TestTrustStatusBeyondLoopbackWarned(t *testing.T) {
	for listen, warn := range map[string]bool{"127.0.0.1:8780": false, "[::1]:8780": false, "localhost:8780": false,
		"0.0.0.0:8780": true, ":8780": true, "192.168.1.20:8780": true} {
		cfg, err := config.Parse("c.yaml", []byte("status: {listen: \""+listen+"\"}\n"))
		if err != nil {
			t.Fatalf("%s: %v", listen, err)
		}
		got := strings.Contains(strings.Join(cfg.Warnings, "\n"), "status.listen: "+listen+" is reachable beyond this board")
		if got != warn {
			t.Errorf("listen %s: warned %v, want %v (%v)", listen, got, warn, cfg.Warnings)
		}
	}
}

// TestTrustUnitCanWriteExampleWatchDir: the shipped unit gave the agent no
// writable watch_dir (no ReadWritePaths, ProtectHome=yes), so a watched file
// could not be moved aside and was queued again after every restart. The
// example config's watch_dir must lie in a directory the unit makes
// writable, and the documented drop-in must add its path the same way.
func TestTrustUnitCanWriteExampleWatchDir(t *testing.T) {
	cfg, err := config.Load(repoFile(t, "deploy/config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var watch string
	for _, l := range cfg.Links {
		if fc, ok := l.Block.(*frameio.Config); ok {
			watch = fc.Upload.WatchDir
		}
	}
	if watch == "" {
		t.Fatal("the example config has no frameio watch_dir to show where it works")
	}
	unit := unitWritable(t, repoFile(t, "deploy/edge-agent.service"))
	if !under(watch, unit) {
		t.Errorf("watch_dir %s is read-only under the unit (writable: %v)", watch, unit)
	}
	if !slices.Contains(unit, watch) {
		t.Errorf("the unit does not create watch_dir %s (StateDirectory=): the agent could not move files aside", watch)
	}
	dropIn := unitWritable(t, repoFile(t, "deploy/watch-dir.conf"))
	if len(dropIn) != 1 || under("/srv/footage/A001.mov", unit) || !under("/srv/footage/A001.mov", dropIn) {
		t.Errorf("deploy/watch-dir.conf adds %v; want the one path it documents", dropIn)
	}
}

// unitWritable lists the directories a unit (or drop-in) file makes
// writable: StateDirectory=, CacheDirectory=, LogsDirectory= (under their
// /var roots) and ReadWritePaths=.
func unitWritable(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	roots := map[string]string{"StateDirectory": "/var/lib/", "CacheDirectory": "/var/cache/", "LogsDirectory": "/var/log/"}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		for _, f := range strings.Fields(v) {
			switch {
			case roots[k] != "":
				out = append(out, roots[k]+f)
			case k == "ReadWritePaths":
				out = append(out, strings.TrimPrefix(f, "-"))
			}
		}
	}
	return out
}

func under(path string, dirs []string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// TestTrustClearSocketNextToHTTPS: a link's socket URL written ws:// while
// its API or ingestion URL is https sent the access token, API key or Bearer
// token in clear text, and config validation said nothing. It warns when
// the socket is on the API's host and refuses the config when it is on
// another one (internal/conf.SocketTLS says why).
func TestTrustClearSocketNextToHTTPS(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	const sensors = `
sensors:
  - {name: cam, kind: synthetic, synthetic: {signal: camera}}
  - {name: m, kind: synthetic, synthetic: {signal: motion}}
links:
`
	for _, tc := range []struct {
		name, link string
		path       string // the field named
		want       string // "warn", "error" or ""
	}{
		{"frameio same host", `{name: f, kind: frameio, frameio: {client_id: c, client_secret_file: SECRET, api_url: "https://fio.example.com", socket_url: "ws://fio.example.com/devices/websocket"}}`,
			"links[0].frameio.socket_url", "warn"},
		{"frameio other host", `{name: f, kind: frameio, frameio: {client_id: c, client_secret_file: SECRET, api_url: "https://fio.example.com", socket_url: "ws://evil.example.net/devices/websocket"}}`,
			"links[0].frameio.socket_url", "error"},
		{"frameio wss default", `{name: f, kind: frameio, frameio: {client_id: c, client_secret_file: SECRET}}`, "", ""},
		{"edgeimpulse same host", `{name: e, kind: edgeimpulse, edgeimpulse: {api_key_file: SECRET, sensors: [m], ingestion_url: "https://ei.example.com", remote_mgmt_url: "ws://ei.example.com:4820"}}`,
			"links[0].edgeimpulse.remote_mgmt_url", "warn"},
		{"edgeimpulse other host", `{name: e, kind: edgeimpulse, edgeimpulse: {api_key_file: SECRET, sensors: [m], remote_mgmt_url: "ws://remote-mgmt.example.com"}}`,
			"links[0].edgeimpulse.remote_mgmt_url", "error"},
		{"edgeimpulse http test rig", `{name: e, kind: edgeimpulse, edgeimpulse: {api_key_file: SECRET, sensors: [m], ingestion_url: "http://10.0.0.2:4810", remote_mgmt_url: "ws://10.0.0.2:4820"}}`, "", ""},
		{"rtm other host", `{name: r, kind: rtm, rtm: {url: "ws://rtm.example.com/io", token_url: "https://backend.example.com/t", token_url_key_file: SECRET, client_id: c, video: cam}}`,
			"links[0].rtm.url", "error"},
		{"rtm loopback", `{name: r, kind: rtm, rtm: {url: "ws://127.0.0.1:8090/io", token_url: "https://backend.example.com/t", token_url_key_file: SECRET, client_id: c, video: cam}}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("c.yaml", []byte(sensors+"  - "+strings.ReplaceAll(tc.link, "SECRET", secret)+"\n"))
			var warnings, problems string
			if cfg != nil {
				warnings = strings.Join(cfg.Warnings, "\n")
			}
			if err != nil {
				problems = err.Error()
			}
			switch tc.want {
			case "":
				if err != nil || strings.Contains(warnings, "clear text") {
					t.Errorf("err = %v, warnings:\n%s\nwant neither", err, warnings)
				}
			case "warn":
				if err != nil || !strings.Contains(warnings, tc.path+": ws:// sends") {
					t.Errorf("err = %v, warnings:\n%s\nwant a warning on %s", err, warnings, tc.path)
				}
			case "error":
				if !strings.Contains(problems, tc.path+": ws:// to") || !strings.Contains(problems, "c.yaml:") {
					t.Errorf("err = %v, want a problem on %s with its line", err, tc.path)
				}
			}
		})
	}
}
