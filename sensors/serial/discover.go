package serial

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	bugserial "go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// Port is one serial port on the board, as listed by `edge-agent sensors`.
type Port struct {
	// Path is the device node, e.g. /dev/ttyACM0.
	Path string
	// Description carries USB details when known (VID:PID, product, serial
	// number) and the stable /dev/serial/by-id name to put in the config.
	Description string
}

// byIDDir is where udev puts stable names for USB serial adapters.
const byIDDir = "/dev/serial/by-id"

// ListPorts lists the serial ports the OS knows. USB details come from
// go.bug.st/serial/enumerator; when the enumerator fails it falls back to the
// plain port list. Safe to call concurrently.
func ListPorts() ([]Port, error) {
	byID := stableNames(byIDDir)
	details, err := enumerator.GetDetailedPortsList()
	if err != nil {
		names, err2 := bugserial.GetPortsList()
		if err2 != nil {
			return nil, fmt.Errorf("list serial ports: %w", err2)
		}
		out := make([]Port, 0, len(names))
		for _, n := range names {
			out = append(out, Port{Path: n, Description: describe(nil, byID[n])})
		}
		sortPorts(out)
		return out, nil
	}
	out := make([]Port, 0, len(details))
	for _, d := range details {
		out = append(out, Port{Path: d.Name, Description: describe(d, byID[d.Name])})
	}
	sortPorts(out)
	return out, nil
}

func sortPorts(p []Port) { sort.Slice(p, func(i, j int) bool { return p[i].Path < p[j].Path }) }

// describe builds a one-line description from USB details and a by-id name.
func describe(d *enumerator.PortDetails, byID string) string {
	var parts []string
	if d != nil && d.IsUSB {
		usb := "USB"
		if d.VID != "" || d.PID != "" {
			usb += " " + strings.ToLower(d.VID) + ":" + strings.ToLower(d.PID)
		}
		if d.Product != "" {
			usb += " " + d.Product
		}
		if d.SerialNumber != "" {
			usb += " serial " + d.SerialNumber
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
