package iio

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/edge-agent/edge-agent/internal/retry"
)

// axes are the accelerometer channels the driver reads, in Info.Axes order.
var axes = [3]string{"accel_x", "accel_y", "accel_z"}

// ErrNoDevice says no IIO device matched the config (not plugged, driver not
// loaded yet); the hub retries with backoff.
var ErrNoDevice = errors.New("no matching IIO device")

// Find returns the device called name, or with name "auto" the first device
// with accelerometer channels. The index N in iio:deviceN is never used to
// choose: it depends on probe order.
func Find(sysRoot, name string) (Device, error) {
	devs, err := Discover(sysRoot)
	if err != nil {
		return Device{}, err
	}
	for _, d := range devs {
		if name == "auto" && d.HasAccel() {
			return d, nil
		}
		if d.Name == name {
			if !d.HasAccel() {
				return Device{}, retry.Permanent(fmt.Errorf("iio device %q (%s) has no accel_x/y/z channels", name, filepath.Base(d.Dir)))
			}
			return d, nil
		}
	}
	if name == "auto" {
		return Device{}, fmt.Errorf("find iio accelerometer under %s: %w", sysRoot, ErrNoDevice)
	}
	return Device{}, fmt.Errorf("find iio device %q under %s: %w", name, sysRoot, ErrNoDevice)
}

// calibration turns raw counts into m/s² in the board's frame:
// v = M · ((raw + offset) · scale).
type calibration struct {
	scale, offset [3]float64
	mount         [3][3]float64
}

func identity() [3][3]float64 { return [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}} }

// apply converts raw counts to calibrated values, writing into dst.
func (c *calibration) apply(dst []float64, raw [3]int64) {
	var v [3]float64
	for i := range 3 {
		v[i] = (float64(raw[i]) + c.offset[i]) * c.scale[i]
	}
	for r := range 3 {
		dst[r] = c.mount[r][0]*v[0] + c.mount[r][1]*v[1] + c.mount[r][2]*v[2]
	}
}

// readCalibration reads scale (shared in_accel_scale or per axis), offset
// (optional, default 0) and the mount matrix (optional, default identity).
func readCalibration(dir string) (calibration, error) {
	c := calibration{mount: identity()}
	for i, ax := range axes {
		s, err := readFirstFloat(dir, "in_"+ax+"_scale", "in_accel_scale")
		if err != nil {
			return c, fmt.Errorf("read %s scale: %w", ax, err)
		}
		c.scale[i] = s
		o, err := readFirstFloat(dir, "in_"+ax+"_offset", "in_accel_offset")
		switch {
		case err == nil:
			c.offset[i] = o
		case !errors.Is(err, fs.ErrNotExist):
			return c, fmt.Errorf("read %s offset: %w", ax, err)
		}
	}
	for _, n := range []string{"in_accel_mount_matrix", "mount_matrix"} {
		s, err := readString(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return c, fmt.Errorf("read %s: %w", n, err)
		}
		m, err := ParseMountMatrix(s)
		if err != nil {
			return c, err
		}
		c.mount = m
		break
	}
	return c, nil
}

// readFirstFloat reads the first of the named attributes that exists.
func readFirstFloat(dir string, names ...string) (float64, error) {
	for _, n := range names {
		f, err := readFloat(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return f, err
	}
	return 0, fs.ErrNotExist
}

// ParseMountMatrix parses the kernel's "x1, y1, z1; x2, y2, z2; x3, y3, z3".
func ParseMountMatrix(s string) ([3][3]float64, error) {
	var m [3][3]float64
	rows := strings.Split(strings.TrimSpace(s), ";")
	if len(rows) != 3 {
		return m, fmt.Errorf("parse mount matrix %q: want 3 rows", s)
	}
	for r, row := range rows {
		cols := strings.Split(row, ",")
		if len(cols) != 3 {
			return m, fmt.Errorf("parse mount matrix %q: want 3 columns", s)
		}
		for c, x := range cols {
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return m, fmt.Errorf("parse mount matrix %q: bad number %q", s, strings.TrimSpace(x))
			}
			m[r][c] = f
		}
	}
	return m, nil
}

// writeAttr writes a sysfs attribute without O_CREATE, so that a misspelt
// attribute fails in tests the way it fails on sysfs. Errors read
// "write <path>: <errno>" whether the open or the write failed (sysfs
// reports a rejected value on either), and keep the errno for errors.Is.
func writeAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return writeErr(path, err)
	}
	_, err = f.WriteString(value + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return writeErr(path, err)
	}
	return nil
}

// writeErr names the write once: os errors already carry their op and path,
// which would otherwise read "write X: write X: invalid argument".
func writeErr(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: "write", Path: path, Err: pe.Err}
	}
	return &fs.PathError{Op: "write", Path: path, Err: err}
}

// chooseRate picks what to ask the driver for: want itself when the device
// lists no rates or lists want, else the smallest listed rate >= want (so the
// chip runs at least as fast as we read), else the fastest listed rate.
func chooseRate(want float64, available []float64) float64 {
	if len(available) == 0 {
		return want
	}
	best, bestOK := 0.0, false
	fastest := available[0]
	for _, a := range available {
		if math.Abs(a-want) < 1e-9 {
			return a
		}
		fastest = max(fastest, a)
		if a >= want && (!bestOK || a < best) {
			best, bestOK = a, true
		}
	}
	if bestOK {
		return best
	}
	return fastest
}

// rateShortfall is how far below the requested rate the driver may run the
// chip before the rate counts as one the device cannot do: drivers round (an
// MPU6050 asked for 62.5 Hz runs at 62), but a chip that tops out at half the
// rate is a configuration mismatch that no retry fixes.
const rateShortfall = 0.05

// setRate writes the sampling frequency and reads it back: drivers round
// (an MPU6050 takes integers only, so 62.5 becomes 62), and the rate the
// chip really runs at is what Info reports. An integer-only driver answers a
// fractional write with EINVAL; the rounded value is tried once more. A device
// without a frequency attribute runs at want.
//
// A rate the device cannot do at all is a retry.Permanent error with the
// reason: the fastest rate in sampling_frequency_available is too slow, the
// driver rejects the value (EINVAL while the device is still there), or it
// reads back a rate well below want.
func setRate(dev Device, want float64) (float64, error) {
	p, ok := freqFile(dev.Dir)
	if !ok {
		return want, nil
	}
	if len(dev.Available) > 0 {
		if fastest := slices.Max(dev.Available); fastest < want*(1-rateShortfall) {
			return 0, retry.Permanent(fmt.Errorf("device %s cannot run at %g Hz: its fastest rate is %g Hz (sampling_frequency_available: %s)",
				dev.Name, want, fastest, formatRates(dev.Available)))
		}
	}
	target := chooseRate(want, dev.Available)
	err := writeAttr(p, formatFloat(target))
	if err != nil && target != math.Round(target) {
		err = writeAttr(p, formatFloat(math.Round(target)))
	}
	if err != nil {
		err = fmt.Errorf("set sampling frequency %g Hz: %w", target, err)
		if errors.Is(err, syscall.EINVAL) && present(dev) {
			return 0, retry.Permanent(fmt.Errorf("device %s rejects the rate: %w", dev.Name, err))
		}
		return 0, err
	}
	got, err := readFloat(p)
	if err != nil {
		return 0, fmt.Errorf("read back sampling frequency: %w", err)
	}
	if got <= 0 || math.IsNaN(got) || math.IsInf(got, 0) {
		return 0, fmt.Errorf("read back sampling frequency: driver reports %q", formatFloat(got))
	}
	if got < want*(1-rateShortfall) {
		return 0, retry.Permanent(fmt.Errorf("device %s cannot run at %g Hz: asked for %g Hz, the driver set %g Hz", dev.Name, want, target, got))
	}
	return got, nil
}

// present reports whether the device's sysfs directory is still there (an
// error seen while it vanishes is not the device's answer to our request).
func present(dev Device) bool {
	_, err := os.Stat(filepath.Join(dev.Dir, "name"))
	return err == nil
}

func formatRates(r []float64) string {
	s := make([]string, len(r))
	for i, f := range r {
		s[i] = formatFloat(f)
	}
	return strings.Join(s, " ")
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
