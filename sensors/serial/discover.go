package serial

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Port is one serial port on the board, as listed by `edge-agent sensors`.
type Port struct {
	// Path is the device node, e.g. /dev/ttyACM0.
	Path string
	// Description carries USB details when known (VID:PID, product, serial
	// number) and the stable /dev/serial/by-id name to put in the config.
	Description string
}

// portName is the tty names that are serial ports (go.bug.st/serial's
// list on Linux): on-chip UARTs, USB adapters and CDC-ACM boards,
// Bluetooth RFCOMM.
var portName = regexp.MustCompile(`^(ttyS|ttyHS|ttyUSB|ttyACM|ttyAMA|rfcomm|ttyO|ttymxc)[0-9]{1,3}$`)

// ListPorts lists the serial ports of this machine from /sys and /dev. Safe
// to call concurrently.
func ListPorts() ([]Port, error) { return listPorts("/sys", "/dev") }

// listPorts reads sysfs and never opens a port. go.bug.st/serial's
// enumerator opens every ttyS* to tell a real 8250 UART from a placeholder,
// and that open sets the port to 9600 baud raw: on a Pi whose serial
// console is ttyS0 (the mini UART), `edge-agent sensors` would have broken
// the console. sysfs tells placeholders apart by their UART type (0, "unknown")
// and gives the USB details directly.
func listPorts(sysRoot, devRoot string) ([]Port, error) {
	class := filepath.Join(sysRoot, "class", "tty")
	ents, err := os.ReadDir(class)
	if err != nil {
		return nil, fmt.Errorf("list serial ports: %w", err)
	}
	byID := stableNames(filepath.Join(devRoot, "serial", "by-id"))
	var out []Port
	for _, e := range ents {
		name := e.Name()
		if !portName.MatchString(name) {
			continue
		}
		dir := filepath.Join(class, name)
		if t, err := os.ReadFile(filepath.Join(dir, "type")); err == nil && strings.TrimSpace(string(t)) == "0" {
			continue // an 8250 placeholder with no UART behind it
		}
		node := filepath.Join(devRoot, name)
		if _, err := os.Stat(node); errors.Is(err, fs.ErrNotExist) {
			continue // gone between the two reads, or no devtmpfs here
		}
		out = append(out, Port{Path: node, Description: describe(usbDetails(dir), byID[node])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// usbInfo is what sysfs knows about a port's USB device.
type usbInfo struct {
	vid, pid, product, serial string
}

// usbDetails finds the USB device behind a tty: its device link is the USB
// interface for CDC-ACM, or a usb-serial port one level below the interface
// for adapters (ftdi_sio, ch341, cp210x, pl2303). nil when the port is not
// on USB.
func usbDetails(ttyDir string) *usbInfo {
	dev, err := filepath.EvalSymlinks(filepath.Join(ttyDir, "device"))
	if err != nil {
		return nil
	}
	sub, err := filepath.EvalSymlinks(filepath.Join(dev, "subsystem"))
	if err != nil {
		return nil
	}
	var usbDev string
	switch filepath.Base(sub) {
	case "usb":
		usbDev = filepath.Dir(dev)
	case "usb-serial":
		usbDev = filepath.Dir(filepath.Dir(dev))
	default:
		return nil
	}
	read := func(f string) string {
		b, _ := os.ReadFile(filepath.Join(usbDev, f))
		return strings.TrimSpace(string(b))
	}
	u := &usbInfo{vid: read("idVendor"), pid: read("idProduct"), product: read("product"), serial: read("serial")}
	if u.vid == "" && u.pid == "" {
		return nil
	}
	return u
}

// describe builds a one-line description from USB details and a by-id name.
func describe(u *usbInfo, byID string) string {
	var parts []string
	if u != nil {
		usb := "USB " + strings.ToLower(u.vid) + ":" + strings.ToLower(u.pid)
		if u.product != "" {
			usb += " " + u.product
		}
		if u.serial != "" {
			usb += " serial " + u.serial
		}
		parts = append(parts, usb)
	}
	if byID != "" {
		parts = append(parts, byID)
	}
	return strings.Join(parts, ", ")
}

// stableNames maps a device node (/dev/ttyACM0) to its by-id symlink.
func stableNames(dir string) map[string]string {
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		link := filepath.Join(dir, e.Name())
		target, err := filepath.EvalSymlinks(link)
		if err != nil {
			continue
		}
		out[target] = link
	}
	return out
}
