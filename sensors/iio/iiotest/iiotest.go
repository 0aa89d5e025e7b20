// Package iiotest builds fake IIO trees: a sysfs root with
// bus/iio/devices/iio:deviceN symlinked into devices/… as the kernel does,
// and a dev root where a FIFO stands in for /dev/iio:deviceN. Tests of the
// iio driver use it, and so can end-to-end runs of `edge-agent sample` on a
// machine without an accelerometer (point sensors.Env.SysRoot/DevRoot at it).
//
// A fake cannot reproduce three kernel behaviours: EINVAL for out-of-range
// values, EBUSY while buffering, and values rounded on read-back. The
// driver validates against *_available itself. Device loss comes in two
// forms: closing the writer (EOF) and Remove, which leaves the reader
// waiting with no EOF, as an unregistered IIO device does.
package iiotest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Device describes one fake device. Zero values leave the attribute out.
type Device struct {
	Index int    // N in iio:deviceN
	Name  string // the name file
	// Accel creates in_accel_{x,y,z}_raw with Raw; without it the device
	// gets one gyro channel (a device Find must skip).
	Accel bool
	Raw   [3]int64
	// Scale is in_accel_scale; AxisScale the per-axis in_accel_x_scale….
	Scale     string
	AxisScale [3]string
	Offset    string // in_accel_offset
	Mount     string // in_accel_mount_matrix, "x1, y1, z1; …"
	Freq      string // sampling_frequency
	Available string // sampling_frequency_available
	// Buffered adds buffer/, scan_elements/ (or buffer0/ with Buffer0),
	// trigger/current_trigger, current_timestamp_clock and the FIFO.
	Buffered bool
	Buffer0  bool
	// Types overrides the scan types of x, y, z, timestamp (default
	// le:s16/16>>0 and le:s64/64>>0).
	Types       [4]string
	NoTimestamp bool
}

// Tree is a fake /sys and /dev under one directory.
type Tree struct {
	Root, Sys, Dev string
}

// NewTree creates root/sys/bus/iio/devices and root/dev.
func NewTree(root string) (*Tree, error) {
	t := &Tree{Root: root, Sys: filepath.Join(root, "sys"), Dev: filepath.Join(root, "dev")}
	if err := os.MkdirAll(filepath.Join(t.Sys, "bus", "iio", "devices"), 0o755); err != nil {
		return nil, fmt.Errorf("iiotest: %w", err)
	}
	if err := os.MkdirAll(t.Dev, 0o755); err != nil {
		return nil, fmt.Errorf("iiotest: %w", err)
	}
	return t, nil
}

// Put writes one attribute (with the trailing newline sysfs has).
func Put(path, v string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("iiotest: %w", err)
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
		return fmt.Errorf("iiotest: %w", err)
	}
	return nil
}

// realDir is where Add puts device index's attributes.
func (t *Tree) realDir(index int) string {
	return filepath.Join(t.Sys, "devices", "platform", "i2c-1", "1-00"+strconv.Itoa(50+index), "iio:device"+strconv.Itoa(index))
}

// Add creates the device and returns its directory as Discover reports it
// (the symlink under bus/iio/devices).
func (t *Tree) Add(d Device) (string, error) {
	node := "iio:device" + strconv.Itoa(d.Index)
	real := t.realDir(d.Index)
	files := map[string]string{"name": d.Name}
	if d.Accel {
		for i, ax := range []string{"x", "y", "z"} {
			files["in_accel_"+ax+"_raw"] = strconv.FormatInt(d.Raw[i], 10)
			if d.AxisScale[i] != "" {
				files["in_accel_"+ax+"_scale"] = d.AxisScale[i]
			}
		}
		opt := map[string]string{"in_accel_scale": d.Scale, "in_accel_offset": d.Offset, "in_accel_mount_matrix": d.Mount}
		for k, v := range opt {
			if v != "" {
				files[k] = v
			}
		}
	} else {
		files["in_anglvel_x_raw"] = "0"
	}
	if d.Freq != "" {
		files["sampling_frequency"] = d.Freq
	}
	if d.Available != "" {
		files["sampling_frequency_available"] = d.Available
	}
	if d.Buffered {
		ctl, scan := "buffer", "scan_elements"
		if d.Buffer0 {
			ctl, scan = "buffer0", "buffer0"
		}
		files[ctl+"/enable"] = "0"
		files[ctl+"/length"] = "0"
		files[ctl+"/watermark"] = "1"
		files["trigger/current_trigger"] = ""
		files["current_timestamp_clock"] = "realtime"
		chans := []string{"accel_x", "accel_y", "accel_z", "timestamp"}
		types := []string{"le:s16/16>>0", "le:s16/16>>0", "le:s16/16>>0", "le:s64/64>>0"}
		for i, c := range chans {
			if c == "timestamp" && d.NoTimestamp {
				continue
			}
			typ := d.Types[i]
			if typ == "" {
				typ = types[i]
			}
			files[scan+"/in_"+c+"_en"] = "0"
			files[scan+"/in_"+c+"_index"] = strconv.Itoa(i)
			files[scan+"/in_"+c+"_type"] = typ
		}
		// A channel the driver must switch off.
		files[scan+"/in_temp_en"] = "1"
		files[scan+"/in_temp_index"] = "9"
		files[scan+"/in_temp_type"] = "le:s16/16>>0"
		fifo := filepath.Join(t.Dev, node)
		_ = os.Remove(fifo)
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			return "", fmt.Errorf("iiotest: mkfifo %s: %w", fifo, err)
		}
	}
	for name, v := range files {
		if err := Put(filepath.Join(real, name), v); err != nil {
			return "", err
		}
	}
	link := filepath.Join(t.Sys, "bus", "iio", "devices", node)
	if err := os.Symlink(real, link); err != nil {
		return "", fmt.Errorf("iiotest: %w", err)
	}
	return link, nil
}

// Remove unregisters device index the way the kernel does: its sysfs
// directory and its /dev node disappear. Unlike closing the writer, a reader
// of the old FIFO sees no EOF while a writer still holds it open, which is
// how an unregistered IIO buffer behaves (poll reports nothing). Add with the
// same index afterwards creates a new device (new inodes) under the old name.
func (t *Tree) Remove(index int) error {
	node := "iio:device" + strconv.Itoa(index)
	for _, p := range []string{filepath.Join(t.Sys, "bus", "iio", "devices", node), filepath.Join(t.Dev, node)} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("iiotest: %w", err)
		}
	}
	if err := os.RemoveAll(t.realDir(index)); err != nil {
		return fmt.Errorf("iiotest: %w", err)
	}
	return nil
}

// OpenWriter opens the FIFO standing in for /dev/iio:deviceN read-write,
// which never blocks on Linux, so the driver's non-blocking open finds a
// writer. Closing it is the device vanishing (the driver reads EOF). Bytes
// written before the driver opens stay in the pipe while this end is open.
func (t *Tree) OpenWriter(index int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(t.Dev, "iio:device"+strconv.Itoa(index)), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("iiotest: %w", err)
	}
	return f, nil
}

// Scan packs x, y, z (le s16) and a timestamp (le s64, ns) into the 16-byte
// scan of a default buffered device: 6 bytes of data, 2 of padding, 8 of
// timestamp.
func Scan(x, y, z int16, ts int64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], uint16(x))
	binary.LittleEndian.PutUint16(b[2:], uint16(y))
	binary.LittleEndian.PutUint16(b[4:], uint16(z))
	binary.LittleEndian.PutUint64(b[8:], uint64(ts))
	return b
}
