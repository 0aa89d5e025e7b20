package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/sensors/iio"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
)

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", rel)
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load(repoFile(t, "deploy/config.example.yaml"))
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if len(cfg.Sensors) != 5 || len(cfg.Links) != 4 {
		t.Fatalf("got %d sensors, %d links", len(cfg.Sensors), len(cfg.Links))
	}
	if b, ok := cfg.Sensors[0].Block.(*iio.Config); !ok || b.Frequencies[0] != 62.5 {
		t.Errorf("iio block not decoded: %+v", cfg.Sensors[0])
	}
	if b, ok := cfg.Links[3].Block.(*camserver.Config); !ok || b.Stream.Delta.D().String() != "400ms" {
		t.Errorf("camserver block = %+v", cfg.Links[3].Block)
	}
	if cfg.Spool.MaxSize != 256<<20 || cfg.Backoff.StableAfter.D().Minutes() != 1 {
		t.Errorf("spool/backoff = %v %v", cfg.Spool.MaxSize, cfg.Backoff.StableAfter)
	}
}

func TestEmptyConfigIsDefaults(t *testing.T) {
	cfg, err := config.Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Status.Listen != "127.0.0.1:8780" || cfg.StateDir != "/var/lib/edge-agent" || cfg.Log.Level != "info" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestExplicitEmptyOverridesDefault(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("status:\n  listen: \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Status.Listen != "" {
		t.Errorf("listen = %q, want empty (status server disabled)", cfg.Status.Listen)
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings, each must appear in some problem
	}{
		{
			name: "misspelt top-level key",
			yaml: "device:\n  id: auto\nstat_dir: /x\n",
			want: []string{`c.yaml:3: stat_dir: unknown key "stat_dir" (did you mean "state_dir"?)`},
		},
		{
			name: "misspelt key inside a link block",
			yaml: "sensors:\n  - name: cam\n    kind: synthetic\n    synthetic: {signal: camera}\nlinks:\n  - name: r\n    kind: rtm\n    rtm:\n      url: wss://x/io\n      token: t\n      client_id: c\n      video: cam\n      vidoe: cam\n",
			want: []string{`c.yaml:13: links[0].rtm.vidoe: unknown key "vidoe" (did you mean "video"?)`},
		},
		{
			name: "missing required field named by path at its block",
			yaml: "sensors:\n  - name: cam\n    kind: synthetic\n    synthetic: {signal: h264}\nlinks:\n  - name: a\n    kind: camserver\n    camserver: {user: u, password: p}\n  - name: r\n    kind: rtm\n    rtm:\n      token: t\n      client_id: c\n      video: cam\n",
			want: []string{"c.yaml:8: links[0].camserver.url: required", "c.yaml:11: links[1].rtm.url: required"},
		},
		{
			name: "wrong kind and missing block",
			yaml: "sensors:\n  - name: a\n    kind: lidar\n  - name: b\n    kind: iio\n",
			want: []string{`sensors[0].kind: "lidar" is not one of`, "c.yaml:4: sensors[1].iio: required for kind iio"},
		},
		{
			name: "block of another kind",
			yaml: "sensors:\n  - name: a\n    kind: synthetic\n    synthetic: {}\n    iio: {}\n",
			want: []string{`sensors[0].iio: block does not match kind "synthetic"`},
		},
		{
			name: "bad duration and size",
			yaml: "spool:\n  max_size: lots\nbackoff:\n  min: soon\n",
			want: []string{`c.yaml:2: spool.max_size: invalid size "lots"`, `c.yaml:4: backoff.min: invalid duration "soon"`},
		},
		{
			name: "type error keeps later indices right",
			yaml: "sensors:\n  - name: a\n    kind: synthetic\n    synthetic: {frequencies: [x]}\n  - name: a\n    kind: synthetic\n    synthetic: {signal: noise}\n",
			want: []string{"c.yaml:4: sensors[0].synthetic", `c.yaml:5: sensors[1].name: "a" is used twice`, `sensors[1].synthetic.signal: "noise" is not one of`},
		},
		{
			name: "unknown sensor referenced by a link",
			yaml: "links:\n  - name: s\n    kind: edgeimpulse\n    edgeimpulse: {api_key: k, sensors: [nope]}\n",
			want: []string{`c.yaml:4: links[0].edgeimpulse.sensors[0]: no sensor named "nope"`},
		},
		{
			name: "log level and listen",
			yaml: "log: {level: loud}\nstatus: {listen: 8780}\n",
			want: []string{`log.level: "loud" is not one of debug|info|warn|error`, `status.listen: "8780" is not host:port`},
		},
		{
			name: "syntax error",
			yaml: "device:\n  id: [\n",
			want: []string{"c.yaml:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("c.yaml", []byte(tt.yaml))
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err = %v, want *config.Error", err)
			}
			all := strings.Join(cerr.Problems, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("missing problem %q in:\n%s", w, all)
				}
			}
		})
	}
}

func TestPprofBeyondLoopbackWarns(t *testing.T) {
	for listen, warn := range map[string]bool{"127.0.0.1:8780": false, "[::1]:8780": false, "localhost:8780": false, "0.0.0.0:8780": true, ":8780": true} {
		cfg, err := config.Parse("c.yaml", []byte("status: {listen: \""+listen+"\", pprof: true}\n"))
		if err != nil {
			t.Fatalf("%s: %v", listen, err)
		}
		got := strings.Contains(strings.Join(cfg.Warnings, "\n"), "status.pprof")
		if got != warn {
			t.Errorf("listen %s: warned %v, want %v (%v)", listen, got, warn, cfg.Warnings)
		}
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "key")
	open := filepath.Join(dir, "open-key")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(open, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(extra string) string {
		return "sensors:\n  - name: m\n    kind: synthetic\n    synthetic: {}\nlinks:\n  - name: s\n    kind: edgeimpulse\n" + extra +
			"    edgeimpulse:\n      sensors: [m]\n"
	}
	t.Run("from file, trimmed", func(t *testing.T) {
		cfg, err := config.Parse("c.yaml", []byte(link("")+"      api_key_file: "+good+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if key := cfg.Links[0].Block.(*edgeimpulse.Config).APIKey; key != "s3cret" || len(cfg.Warnings) != 0 {
			t.Errorf("key %q warnings %v", key, cfg.Warnings)
		}
	})
	t.Run("world-readable file warns", func(t *testing.T) {
		cfg, err := config.Parse("c.yaml", []byte(link("")+"      api_key_file: "+open+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "readable by group or others") {
			t.Errorf("warnings = %v", cfg.Warnings)
		}
		if strings.Contains(strings.Join(cfg.Warnings, ""), "s3cret") {
			t.Error("warning leaks the secret")
		}
	})
	t.Run("missing file is a problem", func(t *testing.T) {
		_, err := config.Parse("c.yaml", []byte(link("")+"      api_key_file: "+filepath.Join(dir, "nope")+"\n"))
		if err == nil || !strings.Contains(err.Error(), "links[0].edgeimpulse.api_key_file: cannot read secret") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("disabled link does not read its secret file", func(t *testing.T) {
		_, err := config.Parse("c.yaml", []byte(link("    disabled: true\n")+"      api_key_file: "+filepath.Join(dir, "nope")+"\n"))
		if err != nil {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("both inline and file", func(t *testing.T) {
		_, err := config.Parse("c.yaml", []byte(link("")+"      api_key: x\n      api_key_file: "+good+"\n"))
		if err == nil || !strings.Contains(err.Error(), "give either api_key or api_key_file") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("neither", func(t *testing.T) {
		_, err := config.Parse("c.yaml", []byte(link("")))
		if err == nil || !strings.Contains(err.Error(), "links[0].edgeimpulse.api_key_file: required (or api_key)") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestBoardType(t *testing.T) {
	tests := []struct{ name, model, want string }{
		{"pi 4", "Raspberry Pi 4 Model B Rev 1.4\x00", "RASPBERRY_PI"},
		{"pi zero 2", "Raspberry Pi Zero 2 W Rev 1.0", "RASPBERRY_PI"},
		{"pi 5", "Raspberry Pi 5 Model B Rev 1.0", "RASPBERRY_PI"},
		{"jetson", "NVIDIA Jetson Nano Developer Kit", "NVIDIA_JETSON_NANO"},
		{"other board", "Radxa ROCK 3 Model A", "EDGE_IMPULSE_LINUX"},
		{"no model", "", "EDGE_IMPULSE_LINUX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := config.BoardType(tt.model); got != tt.want {
				t.Errorf("BoardType(%q) = %q, want %q", tt.model, got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile(filepath.Join("..", "..", "deploy", "config.example.yaml"))
	f.Add(seed)
	f.Add([]byte("sensors:\n  - name: a\n    kind: synthetic\n    synthetic: {frequencies: [x]}\n"))
	f.Add([]byte("links: [{name: x, kind: rtm, rtm: {url: 'wss://h/io'}}]\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yaml", data)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		var cerr *config.Error
		if err != nil && errors.As(err, &cerr) && len(cerr.Problems) == 0 {
			t.Fatal("config.Error with no problems")
		}
	})
}
