package config_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/identity"
)

// fakeMachine is a board's /proc/device-tree/model, /sys/class/net and
// /etc/machine-id in a temporary directory. nets are interfaces as
// "name mac addr_assign_type ifindex [physical]".
func fakeMachine(t *testing.T, model string, nets ...string) config.Machine {
	t.Helper()
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if model != "" {
		write("proc/device-tree/model", model)
	}
	for _, n := range nets {
		f := strings.Fields(n)
		dir := filepath.Join("sys/class/net", f[0])
		write(filepath.Join(dir, "address"), f[1]+"\n")
		write(filepath.Join(dir, "addr_assign_type"), f[2]+"\n")
		write(filepath.Join(dir, "ifindex"), f[3]+"\n")
		if len(f) > 4 {
			write(filepath.Join(dir, "device", "uevent"), "")
		}
	}
	write("etc/machine-id", "0123456789abcdef0123456789abcdef\n")
	return config.Machine{Proc: filepath.Join(root, "proc"), Net: filepath.Join(root, "sys/class/net"),
		MachineID: filepath.Join(root, "etc/machine-id")}
}

const (
	pi5    = "Raspberry Pi 5 Model B Rev 1.0\x00"
	lo     = "lo 00:00:00:00:00:00 0 1"
	ifb0   = "ifb0 a6:67:ca:2d:21:94 1 2"
	eth0   = "eth0 d8:3a:dd:01:02:03 0 4 physical"
	wlan0  = "wlan0 d8:3a:dd:01:02:04 0 5 physical"
	hashed = "370b388e481f40a7acfaddb7564c97f3" // of the fake machine id
)

func TestResolve(t *testing.T) {
	t.Run("auto: the physical MAC, kept; model and type from the device tree", func(t *testing.T) {
		var logs bytes.Buffer
		m := fakeMachine(t, pi5, lo, ifb0, eth0)
		m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		cfg := config.Default()
		cfg.StateDir = filepath.Join(t.TempDir(), "state")
		cfg.Resolve(m)
		host, _ := os.Hostname()
		if cfg.Device.ID != "d8:3a:dd:01:02:03" || cfg.Device.Type != "RASPBERRY_PI" ||
			cfg.Device.Model != "Raspberry Pi 5 Model B Rev 1.0" || cfg.Device.Name != host {
			t.Fatalf("resolved %+v", cfg.Device)
		}
		file := filepath.Join(cfg.StateDir, identity.FileName)
		if b, err := os.ReadFile(file); err != nil || string(b) != "d8:3a:dd:01:02:03\n" {
			t.Fatalf("kept %q, %v", b, err)
		}
		if !strings.Contains(logs.String(), "device id") || !strings.Contains(logs.String(), "the MAC of eth0") {
			t.Errorf("log: %s", logs.String())
		}

		// The next boot: eth0 is gone. The kept id stays, and the log
		// says what the machine would give now.
		logs.Reset()
		m2 := fakeMachine(t, pi5, lo, ifb0, wlan0)
		m2.Logger = m.Logger
		again := config.Default()
		again.StateDir = cfg.StateDir
		again.Resolve(m2)
		if again.Device.ID != cfg.Device.ID {
			t.Errorf("id changed to %s", again.Device.ID)
		}
		if !strings.Contains(logs.String(), "computed=d8:3a:dd:01:02:04") || !strings.Contains(logs.String(), "kept_in="+file) {
			t.Errorf("a kept id that differs from the computed one is not logged: %s", logs.String())
		}
	})
	t.Run("only virtual interfaces: the hashed machine id", func(t *testing.T) {
		cfg := config.Default()
		cfg.StateDir = t.TempDir()
		cfg.Resolve(fakeMachine(t, "", lo, ifb0))
		if cfg.Device.ID != hashed || cfg.Device.Model != "" || cfg.Device.Type != "EDGE_IMPULSE_LINUX" {
			t.Errorf("resolved %+v", cfg.Device)
		}
	})
	t.Run("read-only writes nothing", func(t *testing.T) {
		m := fakeMachine(t, pi5, eth0)
		m.ReadOnly = true
		cfg := config.Default()
		cfg.StateDir = filepath.Join(t.TempDir(), "state")
		cfg.Resolve(m)
		if cfg.Device.ID != "d8:3a:dd:01:02:03" {
			t.Errorf("id %s", cfg.Device.ID)
		}
		if _, err := os.Stat(cfg.StateDir); err == nil {
			t.Errorf("read-only Resolve made %s", cfg.StateDir)
		}
	})
	t.Run("configured values win and keep no file", func(t *testing.T) {
		cfg := config.Default()
		cfg.StateDir = t.TempDir()
		cfg.Device = config.Device{ID: "my-id", Name: "my-name", Type: "MY_TYPE"}
		cfg.Resolve(fakeMachine(t, pi5, eth0))
		want := config.Device{ID: "my-id", Name: "my-name", Type: "MY_TYPE", Model: "Raspberry Pi 5 Model B Rev 1.0"}
		if cfg.Device != want {
			t.Errorf("got %+v, want %+v", cfg.Device, want)
		}
		if _, err := os.Stat(filepath.Join(cfg.StateDir, identity.FileName)); err == nil {
			t.Error("a configured id was kept in state_dir")
		}
	})
	t.Run("a state_dir that cannot be written: the computed id, with a warning", func(t *testing.T) {
		var logs bytes.Buffer
		m := fakeMachine(t, pi5, eth0)
		m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		blocker := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := config.Default()
		cfg.StateDir = filepath.Join(blocker, "state")
		cfg.Resolve(m)
		if cfg.Device.ID != "d8:3a:dd:01:02:03" || !strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("id %s, log %s", cfg.Device.ID, logs.String())
		}
	})
}
