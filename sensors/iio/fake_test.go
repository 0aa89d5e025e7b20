package iio

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// fakeDev describes one device of a fake sysfs tree.
type fakeDev struct {
	index     int
	name      string
	accel     bool
	raw       [3]int64
	scale     string // in_accel_scale; "" for per-axis scale files
	axisScale [3]string
	offset    string
	mount     string
	freq      string // sampling_frequency; "" for none
	available string
	buffered  bool
	buffer0   bool      // kernel >= 5.11 layout
	types     [4]string // x, y, z, timestamp; "" means default
	noTS      bool
}

// fakeTree is a temp dir with sys/ and dev/ roots.
type fakeTree struct {
	root, sys, dev string
}

func newTree(t testing.TB) *fakeTree {
	t.Helper()
	root := t.TempDir()
	ft := &fakeTree{root: root, sys: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev")}
	must(t, os.MkdirAll(filepath.Join(ft.sys, "bus", "iio", "devices"), 0o755))
	must(t, os.MkdirAll(ft.dev, 0o755))
	return ft
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func put(t testing.TB, path, v string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(v+"\n"), 0o644))
}

func get(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	s := string(b)
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

// add creates the device under sys/devices/platform/... and symlinks it from
// sys/bus/iio/devices/iio:deviceN as the kernel does. It returns the
// symlinked directory (what Discover reports) .
func (ft *fakeTree) add(t testing.TB, d fakeDev) string {
	t.Helper()
	node := "iio:device" + strconv.Itoa(d.index)
	real := filepath.Join(ft.sys, "devices", "platform", "i2c-1", "1-0053", node)
	must(t, os.MkdirAll(real, 0o755))
	put(t, filepath.Join(real, "name"), d.name)
	if d.accel {
		for i, ax := range axes {
			put(t, filepath.Join(real, "in_"+ax+"_raw"), strconv.FormatInt(d.raw[i], 10))
			if d.axisScale[i] != "" {
				put(t, filepath.Join(real, "in_"+ax+"_scale"), d.axisScale[i])
			}
		}
		if d.scale != "" {
			put(t, filepath.Join(real, "in_accel_scale"), d.scale)
		}
		if d.offset != "" {
			put(t, filepath.Join(real, "in_accel_offset"), d.offset)
		}
		if d.mount != "" {
			put(t, filepath.Join(real, "in_accel_mount_matrix"), d.mount)
		}
	} else {
		put(t, filepath.Join(real, "in_anglvel_x_raw"), "0")
	}
	if d.freq != "" {
		put(t, filepath.Join(real, "sampling_frequency"), d.freq)
	}
	if d.available != "" {
		put(t, filepath.Join(real, "sampling_frequency_available"), d.available)
	}
	if d.buffered {
		ctl, scan := filepath.Join(real, "buffer"), filepath.Join(real, "scan_elements")
		if d.buffer0 {
			ctl, scan = filepath.Join(real, "buffer0"), filepath.Join(real, "buffer0")
		}
		put(t, filepath.Join(ctl, "enable"), "0")
		put(t, filepath.Join(ctl, "length"), "0")
		put(t, filepath.Join(ctl, "watermark"), "1")
		put(t, filepath.Join(real, "trigger", "current_trigger"), "")
		put(t, filepath.Join(real, "current_timestamp_clock"), "realtime")
		chans := []string{"accel_x", "accel_y", "accel_z", "timestamp"}
		defTypes := []string{"le:s16/16>>0", "le:s16/16>>0", "le:s16/16>>0", "le:s64/64>>0"}
		for i, c := range chans {
			if c == "timestamp" && d.noTS {
				continue
			}
			typ := d.types[i]
			if typ == "" {
				typ = defTypes[i]
			}
			put(t, filepath.Join(scan, "in_"+c+"_en"), "0")
			put(t, filepath.Join(scan, "in_"+c+"_index"), strconv.Itoa(i))
			put(t, filepath.Join(scan, "in_"+c+"_type"), typ)
		}
		// A channel the driver must switch off.
		put(t, filepath.Join(scan, "in_temp_en"), "1")
		put(t, filepath.Join(scan, "in_temp_index"), "9")
		put(t, filepath.Join(scan, "in_temp_type"), "le:s16/16>>0")
		must(t, syscall.Mkfifo(filepath.Join(ft.dev, node), 0o600))
	}
	link := filepath.Join(ft.sys, "bus", "iio", "devices", node)
	must(t, os.Symlink(real, link))
	return link
}

// writer opens the FIFO standing in for /dev/iio:deviceN read-write, which
// never blocks on Linux, so the source's non-blocking open finds a writer.
func (ft *fakeTree) writer(t testing.TB, index int) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(ft.dev, "iio:device"+strconv.Itoa(index)), os.O_RDWR, 0)
	must(t, err)
	return f
}

// scan packs x, y, z (le s16) and a timestamp (le s64) into the 16-byte
// layout of the default fake device.
func scan(x, y, z int16, ts int64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], uint16(x))
	binary.LittleEndian.PutUint16(b[2:], uint16(y))
	binary.LittleEndian.PutUint16(b[4:], uint16(z))
	binary.LittleEndian.PutUint64(b[8:], uint64(ts))
	return b
}
