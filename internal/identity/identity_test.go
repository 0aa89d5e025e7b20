package identity_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/identity"
)

// iface is one entry of a fake /sys/class/net.
type iface struct {
	name, mac string
	assign    string // addr_assign_type; "" writes none
	index     int
	physical  bool // has a device behind it
	up        bool
}

// netTree writes ifs as the kernel shows them under /sys/class/net: one
// directory per interface with address, addr_assign_type, ifindex and
// operstate, and a device link for a physical one (here a directory, as
// os.Stat follows the kernel's symlink to one).
func netTree(t *testing.T, ifs ...iface) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "class", "net")
	for _, i := range ifs {
		dir := filepath.Join(root, i.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		state := "down"
		if i.up {
			state = "up"
		}
		attrs := map[string]string{"address": i.mac, "ifindex": strconv.Itoa(i.index), "operstate": state}
		if i.assign != "" {
			attrs["addr_assign_type"] = i.assign
		}
		for k, v := range attrs {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		if i.physical {
			if err := os.Mkdir(filepath.Join(dir, "device"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// The interfaces of the machine that picked ifb0 (issue 14): lo, two ifb
// with random MACs at lower indexes than a physical eth0.
var (
	lo    = iface{name: "lo", mac: "00:00:00:00:00:00", assign: "0", index: 1, up: true}
	ifb0  = iface{name: "ifb0", mac: "a6:67:ca:2d:21:94", assign: "1", index: 2}
	ifb1  = iface{name: "ifb1", mac: "b6:6f:03:12:9f:b7", assign: "1", index: 3}
	eth0  = iface{name: "eth0", mac: "dc:a6:32:01:02:03", assign: "0", index: 4, physical: true, up: true}
	wlan0 = iface{name: "wlan0", mac: "dc:a6:32:01:02:04", assign: "0", index: 5, physical: true, up: true}
)

func TestPhysicalInterfaces(t *testing.T) {
	tests := []struct {
		name string
		ifs  []iface
		want string // the chosen interface, "" for none
	}{
		{"virtual ones with lower indexes are skipped", []iface{lo, ifb0, ifb1, eth0}, "eth0"},
		{"virtual and up is still virtual", []iface{lo, {name: "docker0", mac: "02:42:ac:11:00:01", assign: "3", index: 2, up: true},
			{name: "br0", mac: "00:11:22:33:44:55", assign: "3", index: 3, up: true}, {name: "end0", mac: "d8:3a:dd:00:00:01", assign: "0", index: 9, physical: true}}, "end0"},
		{"a down physical interface is stable and taken", []iface{lo, {name: "eth0", mac: "dc:a6:32:01:02:03", assign: "0", index: 2, physical: true}, wlan0}, "eth0"},
		{"eth0 before wlan0 whatever the index", []iface{{name: "wlan0", mac: "dc:a6:32:01:02:04", assign: "0", index: 2, physical: true, up: true},
			{name: "eth0", mac: "dc:a6:32:01:02:03", assign: "0", index: 3, physical: true}}, "eth0"},
		{"end0 before wlan0", []iface{wlan0, {name: "end0", mac: "d8:3a:dd:00:00:01", assign: "0", index: 6, physical: true}}, "end0"},
		{"preferred names before a lower index", []iface{{name: "enx001122334455", mac: "00:11:22:33:44:55", assign: "0", index: 2, physical: true, up: true}, wlan0}, "wlan0"},
		{"otherwise the lowest index", []iface{{name: "enp3s0", mac: "00:11:22:33:44:66", assign: "0", index: 3, physical: true},
			{name: "enp2s0", mac: "00:11:22:33:44:55", assign: "0", index: 2, physical: true}}, "enp2s0"},
		{"a vendor MAC before a locally administered one", []iface{{name: "usb0", mac: "02:11:22:33:44:55", assign: "0", index: 2, physical: true, up: true},
			{name: "enp1s0", mac: "00:11:22:33:44:55", assign: "0", index: 3, physical: true}}, "enp1s0"},
		{"a VM's locally administered NIC is taken", []iface{lo, {name: "ens3", mac: "52:54:00:12:34:56", assign: "0", index: 2, physical: true, up: true}}, "ens3"},
		{"a random MAC on a physical interface is skipped", []iface{{name: "usb0", mac: "1a:2b:3c:4d:5e:6f", assign: "1", index: 2, physical: true, up: true}}, ""},
		{"a randomised (set, local) wlan0 MAC is skipped", []iface{{name: "wlan0", mac: "76:5e:12:aa:bb:cc", assign: "3", index: 2, physical: true, up: true},
			{name: "enp1s0", mac: "00:11:22:33:44:55", assign: "0", index: 3, physical: true}}, "enp1s0"},
		{"a vendor MAC set by hand is kept", []iface{{name: "eth0", mac: "00:11:22:33:44:55", assign: "3", index: 2, physical: true}}, "eth0"},
		{"no addr_assign_type (old kernel) counts as permanent", []iface{{name: "eth0", mac: "00:11:22:33:44:55", index: 2, physical: true}}, "eth0"},
		{"no MAC (CAN) is skipped", []iface{{name: "can0", mac: "", assign: "0", index: 2, physical: true, up: true}}, ""},
		{"only virtual interfaces", []iface{lo, ifb0, ifb1}, ""},
		{"none at all", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := identity.PhysicalInterfaces(netTree(t, tt.ifs...))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("chose %+v, want none", got)
				}
				return
			}
			if len(got) == 0 || got[0].Name != tt.want {
				t.Fatalf("chose %+v, want %s first", got, tt.want)
			}
			for _, i := range tt.ifs {
				if i.name == tt.want && got[0].MAC.String() != i.mac {
					t.Errorf("MAC %s, want %s", got[0].MAC, i.mac)
				}
			}
		})
	}
	if got, err := identity.PhysicalInterfaces(filepath.Join(t.TempDir(), "absent")); err != nil || got != nil {
		t.Errorf("no /sys/class/net: %v, %v", got, err)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHashedMachineID: the value `systemd-id128 machine-id --app-specific=
// AppID` printed with this machine id bind-mounted over /etc/machine-id.
func TestHashedMachineID(t *testing.T) {
	dir := t.TempDir()
	got, err := identity.HashedMachineID(writeFile(t, dir, "machine-id", "0123456789abcdef0123456789abcdef\n"))
	if err != nil || got != "370b388e481f40a7acfaddb7564c97f3" {
		t.Errorf("got %q, %v", got, err)
	}
	for _, content := range []string{"", "uninitialized\n"} {
		if _, err := identity.HashedMachineID(writeFile(t, dir, "first-boot", content)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%q: err %v, want fs.ErrNotExist", content, err)
		}
	}
	for _, content := range []string{"not hex at all\n", "0123\n", "00000000000000000000000000000000\n"} {
		if _, err := identity.HashedMachineID(writeFile(t, dir, "bad", content)); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%q: err %v, want a content error", content, err)
		}
	}
}

func TestChoose(t *testing.T) {
	const hashed = "370b388e481f40a7acfaddb7564c97f3"
	mid := func(t *testing.T) string {
		return writeFile(t, t.TempDir(), "machine-id", "0123456789abcdef0123456789abcdef\n")
	}
	state := func(t *testing.T) string { return filepath.Join(t.TempDir(), "state", identity.FileName) }
	random := bytes.Repeat([]byte{0xab}, 16)

	t.Run("MAC, kept 0600", func(t *testing.T) {
		file := state(t)
		c := identity.Choose(identity.Options{NetRoot: netTree(t, lo, ifb0, ifb1, eth0), MachineIDFile: mid(t), File: file})
		if c.ID != eth0.mac || c.Source != identity.FromMAC || c.Detail != "eth0" || !c.Saved || len(c.Problems) != 0 {
			t.Fatalf("%+v", c)
		}
		st, err := os.Stat(file)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("kept file: %v %v", st, err)
		}
		if st, _ := os.Stat(filepath.Dir(file)); st.Mode().Perm() != 0o700 {
			t.Errorf("state dir made %v", st.Mode())
		}
		if got, err := identity.ReadFile(file); got != eth0.mac || err != nil {
			t.Errorf("kept %q, %v", got, err)
		}
	})
	t.Run("no physical interface: machine id, hashed", func(t *testing.T) {
		c := identity.Choose(identity.Options{NetRoot: netTree(t, lo, ifb0), MachineIDFile: mid(t), File: state(t)})
		if c.ID != hashed || c.Source != identity.FromMachineID || !c.Saved {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("nothing: a random id, kept", func(t *testing.T) {
		file := state(t)
		c := identity.Choose(identity.Options{NetRoot: netTree(t, lo), MachineIDFile: filepath.Join(t.TempDir(), "absent"), File: file, Rand: bytes.NewReader(random)})
		if c.ID != strings.Repeat("ab", 16) || c.Source != identity.FromRandom || !c.Saved || len(c.Problems) != 0 || c.Computed.ID != "" {
			t.Fatalf("%+v", c)
		}
		// The next start reads it back: the random id is stable from now on.
		again := identity.Choose(identity.Options{NetRoot: netTree(t, lo), File: file, Rand: bytes.NewReader(bytes.Repeat([]byte{1}, 16))})
		if again.ID != c.ID || again.Source != identity.FromFile {
			t.Errorf("second start %+v", again)
		}
	})
	t.Run("a random id that cannot be kept says so", func(t *testing.T) {
		c := identity.Choose(identity.Options{Rand: bytes.NewReader(random)})
		if c.Source != identity.FromRandom || len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Error(), "changes at every start") {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("a kept id wins over a new MAC", func(t *testing.T) {
		file := state(t)
		first := identity.Choose(identity.Options{NetRoot: netTree(t, ifb0, eth0), File: file})
		// The next boot: eth0 is gone (a HAT replaced, a USB adapter
		// unplugged), wlan0 has another MAC.
		c := identity.Choose(identity.Options{NetRoot: netTree(t, ifb0, wlan0), MachineIDFile: mid(t), File: file})
		if c.ID != first.ID || c.Source != identity.FromFile || c.Detail != file || c.Saved {
			t.Fatalf("%+v", c)
		}
		if c.Computed.ID != wlan0.mac || c.Computed.Detail != "wlan0" {
			t.Errorf("computed %+v, want wlan0's MAC (for the log)", c.Computed)
		}
	})
	t.Run("the ifb case: the id does not change across boots", func(t *testing.T) {
		// ifb0 gets a new random MAC at every boot and sorts before eth0.
		file := state(t)
		var ids []string
		for _, mac := range []string{"a6:67:ca:2d:21:94", "5e:01:02:03:04:05"} {
			tree := netTree(t, lo, iface{name: "ifb0", mac: mac, assign: "1", index: 2}, eth0)
			// Without a kept file too: the computed id alone is stable.
			if c := identity.Choose(identity.Options{NetRoot: tree}); c.ID != eth0.mac {
				t.Fatalf("computed %+v", c)
			}
			ids = append(ids, identity.Choose(identity.Options{NetRoot: tree, File: file}).ID)
		}
		if ids[0] != eth0.mac || ids[1] != eth0.mac {
			t.Errorf("ids %v", ids)
		}
	})
	t.Run("a kept file that holds no id is replaced", func(t *testing.T) {
		file := state(t)
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Dir(file), identity.FileName, "\n")
		c := identity.Choose(identity.Options{NetRoot: netTree(t, eth0), File: file})
		if c.ID != eth0.mac || !c.Saved || len(c.Problems) != 1 {
			t.Fatalf("%+v", c)
		}
		if got, _ := identity.ReadFile(file); got != eth0.mac {
			t.Errorf("kept %q", got)
		}
	})
	t.Run("an unreadable kept file is not overwritten", func(t *testing.T) {
		file := state(t)
		// A directory where the file should be: reading fails with
		// something other than "not there".
		if err := os.MkdirAll(file, 0o700); err != nil {
			t.Fatal(err)
		}
		c := identity.Choose(identity.Options{NetRoot: netTree(t, eth0), File: file})
		if c.ID != eth0.mac || c.Saved || len(c.Problems) != 1 {
			t.Fatalf("%+v", c)
		}
		if st, err := os.Stat(file); err != nil || !st.IsDir() {
			t.Errorf("replaced: %v %v", st, err)
		}
	})
	t.Run("read-only reads the kept id and writes none", func(t *testing.T) {
		file := state(t)
		if c := identity.Choose(identity.Options{NetRoot: netTree(t, eth0), File: file, ReadOnly: true}); c.ID != eth0.mac || c.Saved {
			t.Fatalf("%+v", c)
		}
		if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("read-only wrote %s: %v", file, err)
		}
		if err := identity.WriteFile(file, "kept-id"); err != nil {
			t.Fatal(err)
		}
		if c := identity.Choose(identity.Options{NetRoot: netTree(t, eth0), File: file, ReadOnly: true}); c.ID != "kept-id" || c.Source != identity.FromFile {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("a state dir that cannot be written keeps the computed id", func(t *testing.T) {
		file := filepath.Join(writeFile(t, t.TempDir(), "not-a-dir", ""), identity.FileName)
		c := identity.Choose(identity.Options{NetRoot: netTree(t, eth0), File: file})
		if c.ID != eth0.mac || c.Saved || len(c.Problems) != 1 {
			t.Fatalf("%+v", c)
		}
	})
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{"dc:a6:32:01:02:03\n": "dc:a6:32:01:02:03", "  my-board \n": "my-board"} {
		if got, err := identity.ReadFile(writeFile(t, dir, "id", content)); got != want || err != nil {
			t.Errorf("%q: %q, %v", content, got, err)
		}
	}
	for _, content := range []string{"", "\n", "two words\n", "a\x00b", strings.Repeat("x", 257)} {
		if _, err := identity.ReadFile(writeFile(t, dir, "id", content)); err == nil {
			t.Errorf("%q accepted", content)
		}
	}
	if err := identity.WriteFile(filepath.Join(dir, "w"), "has space"); err == nil {
		t.Error("WriteFile kept an id with a space")
	}
}

func TestModel(t *testing.T) {
	proc := t.TempDir()
	if got := identity.Model(proc); got != "" {
		t.Errorf("no device tree: %q", got)
	}
	if err := os.MkdirAll(filepath.Join(proc, "device-tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	for content, want := range map[string]string{
		"Raspberry Pi 4 Model B Rev 1.4\x00":    "Raspberry Pi 4 Model B Rev 1.4",
		"Raspberry Pi Zero 2 W Rev 1.0\x00\x00": "Raspberry Pi Zero 2 W Rev 1.0",
		"Radxa ROCK 3 Model A\n":                "Radxa ROCK 3 Model A",
		"\x00":                                  "",
	} {
		writeFile(t, filepath.Join(proc, "device-tree"), "model", content)
		if got := identity.Model(proc); got != want {
			t.Errorf("%q: %q, want %q", content, got, want)
		}
	}
}
