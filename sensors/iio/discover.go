package iio

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Device describes one IIO device as found under <sysRoot>/bus/iio/devices.
// It is what `edge-agent sensors` lists and what the driver uses to pick a
// device by name.
type Device struct {
	// Name is the content of the device's "name" file (e.g. adxl345).
	Name string
	// Dir is the iio:deviceN directory (under sysRoot, symlinks not resolved).
	Dir string
	// Index is N in iio:deviceN; it depends on probe order, so it is only
	// used to find /dev/iio:deviceN, never to choose a device.
	Index int
	// Channels lists the readable channels, e.g. accel_x, accel_y, accel_z,
	// anglvel_x, temp, timestamp (from in_*_raw and scan_elements).
	Channels []string
	// SamplingFrequency is the current rate in Hz (0 when the device has none).
	SamplingFrequency float64
	// Available is the parsed sampling_frequency_available list; a range
	// "[min step max]" is expanded when it has at most 64 steps, otherwise it
	// is reported as its two ends.
	Available []float64
	// Buffered says the device supports buffered capture (scan_elements).
	Buffered bool
}

// HasAccel reports whether the device has the three accelerometer axes.
func (d Device) HasAccel() bool {
	n := 0
	for _, c := range d.Channels {
		switch c {
		case "accel_x", "accel_y", "accel_z":
			n++
		}
	}
	return n == 3
}

// Discover lists the IIO devices under <sysRoot>/bus/iio/devices sorted by
// index. A missing IIO directory is not an error (the board has no IIO
// devices); a device whose files cannot be read is skipped. Discover only
// reads sysfs and is safe to call concurrently.
func Discover(sysRoot string) ([]Device, error) {
	base := filepath.Join(sysRoot, "bus", "iio", "devices")
	entries, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("iio discover: %w", err)
	}
	var out []Device
	for _, e := range entries {
		idx, ok := strings.CutPrefix(e.Name(), "iio:device")
		if !ok {
			continue // triggers (triggerN) and other entries
		}
		n, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		d, err := readDevice(filepath.Join(base, e.Name()), n)
		if err != nil {
			continue
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

func readDevice(dir string, index int) (Device, error) {
	d := Device{Dir: dir, Index: index}
	name, err := readString(filepath.Join(dir, "name"))
	if err != nil {
		return d, err
	}
	d.Name = name
	entries, err := os.ReadDir(dir)
	if err != nil {
		return d, fmt.Errorf("read %s: %w", dir, err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if ch, ok := channelOfRaw(e.Name()); ok && !seen[ch] {
			seen[ch] = true
			d.Channels = append(d.Channels, ch)
		}
	}
	if se, ok := scanElementsDir(dir); ok {
		d.Buffered = true
		ents, _ := os.ReadDir(se)
		for _, e := range ents {
			if ch, ok := strings.CutSuffix(e.Name(), "_en"); ok {
				ch = strings.TrimPrefix(ch, "in_")
				if !seen[ch] {
					seen[ch] = true
					d.Channels = append(d.Channels, ch)
				}
			}
		}
	}
	sort.Strings(d.Channels)
	if p, ok := freqFile(dir); ok {
		if f, err := readFloat(p); err == nil {
			d.SamplingFrequency = f
		}
		if s, err := readString(p + "_available"); err == nil {
			d.Available, _ = ParseAvailable(s)
		}
	}
	return d, nil
}

// channelOfRaw maps in_accel_x_raw → accel_x.
func channelOfRaw(file string) (string, bool) {
	s, ok := strings.CutPrefix(file, "in_")
	if !ok {
		return "", false
	}
	s, ok = strings.CutSuffix(s, "_raw")
	return s, ok && s != ""
}

// scanElementsDir returns the scan_elements directory, preferring the
// per-buffer buffer0/ layout (kernel >= 5.11) when it has channel files.
func scanElementsDir(dir string) (string, bool) {
	for _, p := range []string{filepath.Join(dir, "buffer0"), filepath.Join(dir, "scan_elements")} {
		ents, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), "_en") {
				return p, true
			}
		}
	}
	return "", false
}

// freqFile returns the sampling frequency attribute the device has.
func freqFile(dir string) (string, bool) {
	for _, n := range []string{"sampling_frequency", "in_accel_sampling_frequency"} {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// ParseAvailable parses a sampling_frequency_available attribute: either a
// space-separated list ("12.5 25 50 100") or a range "[min step max]". Ranges
// with at most 64 steps are expanded; longer ones yield {min, max}.
func ParseAvailable(s string) ([]float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		inner, ok := strings.CutSuffix(s[1:], "]")
		if !ok {
			return nil, fmt.Errorf("parse available %q: unterminated range", s)
		}
		f := strings.Fields(inner)
		if len(f) != 3 {
			return nil, fmt.Errorf("parse available %q: want [min step max]", s)
		}
		var v [3]float64
		for i, x := range f {
			n, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, fmt.Errorf("parse available %q: %w", s, err)
			}
			if math.IsNaN(n) || math.IsInf(n, 0) {
				return nil, fmt.Errorf("parse available %q: not a finite number", s)
			}
			v[i] = n
		}
		lo, step, hi := v[0], v[1], v[2]
		if hi < lo || step < 0 {
			return nil, fmt.Errorf("parse available %q: bad range", s)
		}
		if step == 0 || (hi-lo)/step > 64 {
			return []float64{lo, hi}, nil
		}
		// Count the steps first: a step too small to move lo in float64
		// ([2 1e-300 2]) would never pass hi in a loop that adds it.
		n := int(math.Floor((hi-lo)/step + 1e-9))
		out := make([]float64, 0, n+1)
		for i := 0; i <= n; i++ {
			out = append(out, lo+float64(i)*step)
		}
		return out, nil
	}
	var out []float64
	for _, x := range strings.Fields(s) {
		n, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return nil, fmt.Errorf("parse available %q: %w", s, err)
		}
		if math.IsNaN(n) || math.IsInf(n, 0) || n <= 0 {
			return nil, fmt.Errorf("parse available %q: %q is not a positive rate", s, x)
		}
		out = append(out, n)
	}
	return out, nil
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func readFloat(path string) (float64, error) {
	s, err := readString(path)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", filepath.Base(path), err)
	}
	return f, nil
}
