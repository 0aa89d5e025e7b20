// Package identity chooses the id the clouds know a board by and reads the
// board's model.
//
// The id must survive reboots: Edge Impulse keys a device by it (one live
// connection per id) and a board whose id changes shows up as a new device
// after every boot. The MAC of whichever interface comes first is not enough:
// virtual interfaces (ifb, veth, bridges, tunnels) sort before or among the
// physical ones and some get a random MAC at every boot. Choose therefore
// takes, in order:
//
//  1. the id kept in the state directory (File) by an earlier start, so the id
//     never changes once used, even when the machine would now give another
//     (a network card swapped, an interface renamed);
//  2. the MAC of a physical network interface: one with a device behind it
//     (/sys/class/net/NAME/device exists), preferring eth0, end0 and wlan0 in
//     that order, then the lowest interface index. Whether the interface is up
//     does not matter: its MAC is the board's either way, and choosing only up
//     ones would change the id when a cable is plugged in. MACs the kernel
//     calls random (addr_assign_type 1) are skipped, and so are locally
//     administered MACs set by software (addr_assign_type 2 or 3), which is
//     what MAC randomisation writes; a locally administered MAC the device
//     came with (a VM's virtio NIC) is taken after the others;
//  3. /etc/machine-id, hashed as systemd's app-specific ids are (so the id
//     does not give the machine id away, and `systemd-id128 machine-id
//     --app-specific=` + AppID prints the same value);
//  4. a random id, which is only stable as long as File keeps it.
//
// The id it chose (from 2–4) is written to File, 0600, before it is used.
// A configured device.id never reaches this package: it wins outright.
//
// Everything here reads and writes only the paths it is given; the functions
// are safe for concurrent use, though two concurrent Choose calls on one
// File may each write their own random id when the machine has no other.
package identity

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
)

// FileName is the file in the state directory that keeps the chosen id.
const FileName = "device-id"

// AppID is the application id the machine id is hashed with (a random
// 128-bit value chosen once for this agent; see systemd's
// sd_id128_get_machine_app_specific).
const AppID = "0af4d76294e84ee79e6a95c162824b01"

// Defaults on a running Linux system.
const (
	NetRoot       = "/sys/class/net"
	MachineIDFile = "/etc/machine-id"
)

// maxIDLen bounds a kept id: longer content is not an id this agent wrote.
const maxIDLen = 256

// Source says where an id came from.
type Source string

// The sources, in Choose's order.
const (
	FromFile      Source = "file"       // kept by an earlier start
	FromMAC       Source = "mac"        // a physical interface's MAC
	FromMachineID Source = "machine-id" // /etc/machine-id, hashed
	FromRandom    Source = "random"     // nothing else was found
)

// Candidate is an id and where it came from.
type Candidate struct {
	ID     string
	Source Source
	// Detail names the origin: the interface ("eth0") or the file's path.
	Detail string
}

// String says where the id came from, for logs: "the MAC of eth0",
// "/etc/machine-id (hashed)", the kept file's path.
func (c Candidate) String() string {
	switch c.Source {
	case FromMAC:
		return "the MAC of " + c.Detail
	case FromMachineID:
		return c.Detail + " (hashed)"
	case FromFile:
		return c.Detail
	case FromRandom:
		return "a random id (the machine has no physical interface and no machine id)"
	}
	return string(c.Source)
}

// Options says where Choose looks. Zero paths mean "none": no interfaces, no
// machine id, nothing kept.
type Options struct {
	// NetRoot lists the network interfaces (NetRoot in production).
	NetRoot string
	// MachineIDFile is MachineIDFile in production.
	MachineIDFile string
	// File keeps the chosen id (state_dir/device-id).
	File string
	// ReadOnly reads File but never writes it: a command that may run as
	// another user than the daemon must not leave a file the daemon cannot
	// read.
	ReadOnly bool
	// Rand supplies a random id; nil is crypto/rand.
	Rand io.Reader
}

// Choice is the id Choose settled on.
type Choice struct {
	Candidate
	// Computed is what the machine gives now (zero when it gives nothing but
	// a random id); it differs from Candidate when a kept id wins.
	Computed Candidate
	// Saved: this call wrote the id to File.
	Saved bool
	// Problems went wrong on the way without stopping the choice: File
	// unreadable or not an id, File not written.
	Problems []error
}

// Choose returns the board's id as the package comment describes.
func Choose(o Options) Choice {
	var c Choice
	c.Computed, c.Problems = Compute(o.NetRoot, o.MachineIDFile)
	if o.File != "" {
		id, err := ReadFile(o.File)
		switch {
		case err == nil:
			c.Candidate = Candidate{ID: id, Source: FromFile, Detail: o.File}
			return c
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, errNotID):
			// Rewritten below: content that is no id keeps nothing.
			c.Problems = append(c.Problems, err)
		default:
			// Unreadable now (permissions): the kept id may still be there,
			// so it is not overwritten; this start uses the computed one.
			c.Problems = append(c.Problems, fmt.Errorf("%w; not replacing it", err))
			o.ReadOnly = true
		}
	}
	c.Candidate = c.Computed
	if c.ID == "" {
		id, err := randomID(o.Rand)
		if err != nil {
			// Not with crypto/rand on Linux; an id that is not random is
			// used for this start only, never kept.
			c.Problems = append(c.Problems, err)
			id, o.ReadOnly = "00000000000000000000000000000000", true
		}
		c.Candidate = Candidate{ID: id, Source: FromRandom}
	}
	if o.File != "" && !o.ReadOnly {
		if err := WriteFile(o.File, c.ID); err != nil {
			c.Problems = append(c.Problems, err)
		} else {
			c.Saved = true
		}
	}
	if c.Source == FromRandom && !c.Saved {
		c.Problems = append(c.Problems, errors.New("device id: the random id was not kept and changes at every start; set device.id"))
	}
	return c
}

// Compute returns the id the machine gives now: a physical interface's MAC,
// else the hashed machine id, else a zero Candidate. Problems are files that
// exist but cannot be read.
func Compute(netRoot, machineIDFile string) (Candidate, []error) {
	var problems []error
	if netRoot != "" {
		ifs, err := PhysicalInterfaces(netRoot)
		if err != nil {
			problems = append(problems, err)
		}
		if len(ifs) > 0 {
			return Candidate{ID: ifs[0].MAC.String(), Source: FromMAC, Detail: ifs[0].Name}, problems
		}
	}
	if machineIDFile != "" {
		id, err := HashedMachineID(machineIDFile)
		if err == nil {
			return Candidate{ID: id, Source: FromMachineID, Detail: machineIDFile}, problems
		}
		if !errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, err)
		}
	}
	return Candidate{}, problems
}

// Interface is a physical network interface whose MAC may identify the board.
type Interface struct {
	Name  string
	Index int // the kernel's ifindex
	MAC   net.HardwareAddr
	// Local: the MAC is locally administered (not a vendor's).
	Local bool
}

// preferred are the names of the board's own interfaces: the classic and the
// systemd-predictable name of on-board Ethernet, then on-board Wi-Fi.
var preferred = []string{"eth0", "end0", "wlan0"}

// PhysicalInterfaces lists the interfaces under netRoot whose MAC is stable,
// best first (see the package comment). No directory is no interface.
func PhysicalInterfaces(netRoot string) ([]Interface, error) {
	ents, err := os.ReadDir(netRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []Interface
	for _, e := range ents {
		dir := filepath.Join(netRoot, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue // virtual: lo, ifb, veth, bridges, tunnels, wireguard
		}
		mac, err := net.ParseMAC(readAttr(dir, "address"))
		if err != nil || len(mac) != 6 || bytes.Equal(mac, make([]byte, 6)) || bytes.Equal(mac, bytes.Repeat([]byte{0xff}, 6)) {
			continue // no EUI-48 (CAN, InfiniBand) or none set
		}
		local := mac[0]&0x02 != 0
		// include/uapi/linux/netdevice.h: NET_ADDR_PERM 0, RANDOM 1,
		// STOLEN 2, SET 3. Missing (old kernels) counts as permanent.
		switch readAttr(dir, "addr_assign_type") {
		case "1":
			continue
		case "2", "3":
			if local {
				continue
			}
		}
		idx, err := strconv.Atoi(readAttr(dir, "ifindex"))
		if err != nil {
			idx = int(^uint(0) >> 1)
		}
		out = append(out, Interface{Name: e.Name(), Index: idx, MAC: mac, Local: local})
	}
	rank := func(name string) int {
		for i, p := range preferred {
			if name == p {
				return i
			}
		}
		return len(preferred)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := rank(a.Name), rank(b.Name); ra != rb {
			return ra < rb
		}
		if a.Local != b.Local {
			return !a.Local
		}
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		return a.Name < b.Name
	})
	return out, nil
}

func readAttr(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return strings.TrimSpace(string(b))
}

// HashedMachineID reads the machine id in path (32 hex digits) and returns
// the app-specific id for AppID: HMAC-SHA256 keyed with the machine id over
// AppID, its first 16 bytes marked as a version 4 UUID, as 32 hex digits.
// An empty or "uninitialized" file (first boot) is fs.ErrNotExist.
func HashedMachineID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("machine id: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" || s == "uninitialized" {
		return "", fmt.Errorf("machine id: %s is %q: %w", path, s, fs.ErrNotExist)
	}
	key, err := hex.DecodeString(s)
	if err != nil || len(key) != 16 || bytes.Equal(key, make([]byte, 16)) {
		return "", fmt.Errorf("machine id: %s holds %q, not 32 hex digits", path, truncate(s))
	}
	app, _ := hex.DecodeString(AppID)
	m := hmac.New(sha256.New, key)
	m.Write(app)
	id := m.Sum(nil)[:16]
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return hex.EncodeToString(id), nil
}

func randomID(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("device id: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// errNotID marks a kept file whose content is not an id.
var errNotID = errors.New("not a device id")

// ReadFile returns the id kept in path: its one line, trimmed. Content that
// cannot be an id (empty, control characters or spaces inside, longer than
// 256 bytes) is an error wrapping errNotID; a missing file wraps
// fs.ErrNotExist.
func ReadFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("device id: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if !validID(s) {
		return "", fmt.Errorf("device id: %s holds %q: %w", path, truncate(s), errNotID)
	}
	return s, nil
}

// WriteFile keeps id in path (0600, crash-safe), creating its directory
// (0700) when missing.
func WriteFile(path, id string) error {
	if !validID(id) {
		return fmt.Errorf("device id: %q: %w", truncate(id), errNotID)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("device id: keep: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("device id: keep in %s: %w", path, err)
	}
	return nil
}

func validID(s string) bool {
	if s == "" || len(s) > maxIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Model returns the board's model from the device tree under procRoot
// (/proc/device-tree/model, e.g. "Raspberry Pi 4 Model B Rev 1.4"), without
// the trailing NUL the kernel keeps; "" when the machine has no device tree
// (a PC) or it names no model.
func Model(procRoot string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, "device-tree", "model"))
	if err != nil {
		return ""
	}
	// A device-tree string property ends in NUL; take the first string.
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}
