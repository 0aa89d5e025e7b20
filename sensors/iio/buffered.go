package iio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// bufferDirs returns the buffer control directory (enable, length,
// watermark) and the scan_elements directory. Kernels >= 5.11 have both in
// buffer0/; older ones have buffer/ and scan_elements/.
func bufferDirs(dir string) (ctl, scan string) {
	if se, ok := scanElementsDir(dir); ok && filepath.Base(se) == "buffer0" {
		return se, se
	}
	return filepath.Join(dir, "buffer"), filepath.Join(dir, "scan_elements")
}

// setupBuffer enables x, y, z and the timestamp (every other channel off),
// returns the resulting scan layout. The buffer must be disabled. A scan the
// decoder cannot read (no accel channel, a type or layout it does not
// handle) is a retry.Permanent error: the device will not change.
func setupBuffer(scanDir string) (Layout, error) {
	ents, err := os.ReadDir(scanDir)
	if err != nil {
		return Layout{}, fmt.Errorf("read scan elements: %w", err)
	}
	want := map[string]bool{"accel_x": true, "accel_y": true, "accel_z": true, "timestamp": true}
	var chans []Channel
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), "_en")
		if !ok {
			continue
		}
		name := strings.TrimPrefix(base, "in_")
		on := want[name]
		v := "0"
		if on {
			v = "1"
		}
		if err := writeAttr(filepath.Join(scanDir, e.Name()), v); err != nil {
			return Layout{}, err
		}
		if !on {
			continue
		}
		idxS, err := readString(filepath.Join(scanDir, base+"_index"))
		if err != nil {
			return Layout{}, fmt.Errorf("read %s index: %w", name, err)
		}
		idx, err := strconv.Atoi(idxS)
		if err != nil || idx < 0 {
			return Layout{}, fmt.Errorf("read %s index: bad value %q", name, idxS)
		}
		typS, err := readString(filepath.Join(scanDir, base+"_type"))
		if err != nil {
			return Layout{}, fmt.Errorf("read %s type: %w", name, err)
		}
		typ, err := ParseScanType(typS)
		if err != nil {
			return Layout{}, retry.Permanent(err)
		}
		chans = append(chans, Channel{Name: name, Index: idx, Type: typ})
	}
	l, err := NewLayout(chans)
	if err != nil {
		return l, retry.Permanent(err)
	}
	for _, ax := range axes {
		if l.Find(ax) < 0 {
			return l, retry.Permanent(fmt.Errorf("scan elements: no %s channel", ax))
		}
	}
	return l, nil
}

// runBuffered configures the kernel buffer in the documented order (disable,
// rate, channels, trigger, length, watermark, enable), then reads packed
// scans from /dev/iio:deviceN. The char device is opened non-blocking so it
// goes through the runtime poller: ctx cancellation sets a past read
// deadline, which unblocks Read at once, without a goroutine parked in a
// syscall. Reads may return partial scans (a FIFO in tests, never the
// kernel): leftover bytes are carried to the next read. Rows missing from the
// kernel timestamps (FIFO overflow, reports the device never sent) are
// counted in Lost and advance Seq, judged against the rate over a window so
// that late arrivals are not loss (see lossMeter).
//
// Device loss: EOF (a FIFO) or a read error ends the run. An unregistered
// IIO device gives neither: its buffer's poll reports no event, so a reader
// waiting for readiness waits forever. Reads therefore carry a deadline of
// presenceCheck; whenever it passes (and at least that often while data
// flows) the run checks that the device's sysfs directory and /dev node are
// still the ones it opened, and the next Read makes a fresh read(2), which
// an unregistered device answers with ENODEV. Either way Run returns an
// error, and the hub's restart finds the device again by name (it may come
// back as another iio:deviceN).
func (s *Source) runBuffered(ctx context.Context, out chan<- sensors.Sample, dev Device, cal calibration, want float64) error {
	ctl, scanDir := bufferDirs(dev.Dir)
	enable := filepath.Join(ctl, "enable")
	if err := writeAttr(enable, "0"); err != nil {
		return fmt.Errorf("iio %s: disable buffer: %w", s.name, err)
	}
	rate, err := setRate(dev, want)
	if err != nil {
		return fmt.Errorf("iio %s: %w", s.name, err)
	}
	// Kernel timestamps default to realtime, which NTP steps; ask for
	// monotonic and use whatever the driver ends up with.
	tsClock := "realtime"
	if p := filepath.Join(dev.Dir, "current_timestamp_clock"); fileExists(p) {
		_ = writeAttr(p, "monotonic")
		if c, err := readString(p); err == nil && c != "" {
			tsClock = c
		}
	}
	layout, err := setupBuffer(scanDir)
	if err != nil {
		return fmt.Errorf("iio %s: %w", s.name, err)
	}
	if s.cfg.Trigger != "" {
		if err := writeAttr(filepath.Join(dev.Dir, "trigger", "current_trigger"), s.cfg.Trigger); err != nil {
			return fmt.Errorf("iio %s: set trigger: %w", s.name, err)
		}
	}
	length := max(int(math.Ceil(2*rate)), 128) // >= 2 s of data in the kernel ring
	watermark := max(1, int(rate/10))          // one wake-up per ~100 ms
	if err := writeAttr(filepath.Join(ctl, "length"), strconv.Itoa(length)); err != nil {
		return fmt.Errorf("iio %s: buffer length: %w", s.name, err)
	}
	if p := filepath.Join(ctl, "watermark"); fileExists(p) {
		if err := writeAttr(p, strconv.Itoa(watermark)); err != nil {
			return fmt.Errorf("iio %s: buffer watermark: %w", s.name, err)
		}
	}
	if err := writeAttr(enable, "1"); err != nil {
		return fmt.Errorf("iio %s: enable buffer: %w", s.name, err)
	}
	defer func() {
		if err := writeAttr(enable, "0"); err != nil {
			s.log.Debug("iio disable buffer", "err", err)
		}
	}()

	path := filepath.Join(s.env.DevRoot, "iio:device"+strconv.Itoa(dev.Index))
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("iio %s: open %s: %w", s.name, path, err)
	}
	defer f.Close()
	id, err := pinDevice(dev.Dir, f, path)
	if err != nil {
		return fmt.Errorf("iio %s: %w", s.name, err)
	}
	// Cancellation: a past deadline unblocks Read. Run waits for the
	// AfterFunc goroutine if it started, so nothing outlives Run. The
	// periodic deadlines below are set before ctx is checked, so they can
	// never undo a cancellation's past deadline.
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)); close(woken) })
	defer func() {
		if !stop() {
			<-woken
		}
	}()
	s.opened(dev, "buffered", want, rate)

	check := s.presenceEvery
	if check <= 0 {
		check = presenceCheck
	}
	// Rows may legitimately pause (a HID sensor reporting on change
	// only), so silence alone is not an error; it is logged once.
	silence := max(5*time.Second, time.Duration(50*float64(time.Second)/rate))
	d := newScanDecoder(layout, cal, rate, tsClock)
	buf := make([]byte, layout.Size*max(64, watermark))
	fill := 0
	lastData, lastCheck := time.Now(), time.Now()
	quiet := false
	for {
		if err := f.SetReadDeadline(time.Now().Add(check)); err != nil {
			return fmt.Errorf("iio %s: %s: %w", s.name, path, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		n, rerr := f.Read(buf[fill:])
		now := time.Now()
		fill += n
		whole := fill / layout.Size * layout.Size
		if whole > 0 {
			lastData, quiet = now, false
			batch := d.decode(buf[:whole], now)
			for _, smp := range batch {
				if !send(ctx, out, smp) {
					return nil
				}
			}
			if d.lost > 0 {
				s.noteLost(d.lost, "rows missing from the kernel timestamps (FIFO overflow or not sent)")
				d.lost = 0
			}
			if d.jumps > 0 {
				s.noteJumps(d.jumps)
				d.jumps = 0
			}
			fill = copy(buf, buf[whole:fill])
		}
		if ctx.Err() != nil {
			return nil
		}
		if now.Sub(lastCheck) >= check {
			lastCheck = now
			if err := id.check(); err != nil {
				return fmt.Errorf("iio %s: device %s gone: %w", s.name, dev.Name, err)
			}
		}
		if rerr == nil {
			continue
		}
		if errors.Is(rerr, os.ErrDeadlineExceeded) {
			// No data for a check period: the device was verified above;
			// the next Read's read(2) also surfaces ENODEV.
			if !quiet && now.Sub(lastData) >= silence {
				quiet = true
				s.log.Warn("iio device present but sends no data", "device", dev.Name, "for", now.Sub(lastData).Round(time.Second))
			}
			continue
		}
		if errors.Is(rerr, io.EOF) {
			return fmt.Errorf("iio %s: read %s: device gone: %w", s.name, path, io.ErrUnexpectedEOF)
		}
		if errors.Is(rerr, syscall.ENODEV) {
			return fmt.Errorf("iio %s: read %s: device gone: %w", s.name, path, rerr)
		}
		return fmt.Errorf("iio %s: read %s: %w", s.name, path, rerr)
	}
}

// deviceID pins the device a run opened: its sysfs directory and its /dev
// node as they were at open. A device that is unplugged and comes back, even
// under the same iio:deviceN and major:minor, has new inodes, so the check
// tells it from the one whose buffer this run holds.
type deviceID struct {
	dir, node     string
	dirFI, nodeFI os.FileInfo
}

func pinDevice(dir string, f *os.File, node string) (deviceID, error) {
	dfi, err := os.Stat(dir)
	if err != nil {
		return deviceID{}, fmt.Errorf("stat %s: %w", dir, err)
	}
	nfi, err := f.Stat()
	if err != nil {
		return deviceID{}, fmt.Errorf("stat %s: %w", node, err)
	}
	return deviceID{dir: dir, node: node, dirFI: dfi, nodeFI: nfi}, nil
}

// errReplaced says a path now names another device than the one opened.
var errReplaced = errors.New("replaced by another device")

// check returns an error when the directory or the node is gone or is no
// longer the one pinned.
func (id deviceID) check() error {
	for _, p := range []struct {
		path string
		was  os.FileInfo
	}{{id.dir, id.dirFI}, {id.node, id.nodeFI}} {
		fi, err := os.Stat(p.path)
		if err != nil {
			return err
		}
		if !os.SameFile(fi, p.was) {
			return fmt.Errorf("%s: %w", p.path, errReplaced)
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// scanDecoder turns packed scans into motion rows. It is owned by one Run.
type scanDecoder struct {
	l       Layout
	cal     calibration
	ax      [3]int
	ts      int // channel index of the timestamp, -1 without one
	periodN float64
	base    timeBase
	hasBase bool

	seq    uint64
	prevTS int64
	havePr bool
	loss   *lossMeter
	lost   uint64 // rows missing since the caller last reset it
	jumps  uint64 // timestamp discontinuities since the caller last reset it
}

// maxGapNs bounds what a timestamp gap may mean as lost rows: the kernel
// ring holds >= 2 s, so a gap far longer than that is a reset device or a
// stepped clock, not an overflow of 10⁹ rows.
const maxGapNs = 60e9

func newScanDecoder(l Layout, cal calibration, rate float64, tsClock string) *scanDecoder {
	d := &scanDecoder{l: l, cal: cal, ts: l.Find("timestamp"), periodN: 1e9 / rate, loss: newLossMeter(rate)}
	for i, ax := range axes {
		d.ax[i] = l.Find(ax)
	}
	d.base, d.hasBase = newTimeBase(tsClock)
	return d
}

// decode converts whole scans (len(b) a multiple of the scan size) read at
// readAt. Rows of one batch share one Values backing array.
func (d *scanDecoder) decode(b []byte, readAt time.Time) []sensors.Sample {
	k := len(b) / d.l.Size
	out := make([]sensors.Sample, 0, k)
	vals := make([]float64, 3*k)
	var raw [3]int64
	for i := range k {
		scan := b[i*d.l.Size : (i+1)*d.l.Size]
		for j := range 3 {
			raw[j] = d.l.Value(scan, d.ax[j])
		}
		row := vals[3*i : 3*i+3 : 3*i+3]
		d.cal.apply(row, raw)
		var t time.Time
		if d.ts >= 0 {
			ts := d.l.Value(scan, d.ts)
			if d.havePr {
				if gap := float64(ts - d.prevTS); gap > maxGapNs || gap < 0 {
					// The clock was switched or stepped, or the device
					// sent garbage: elapsed time says nothing about rows
					// lost. Note the discontinuity and start over.
					d.jumps++
					d.loss.reset()
				}
			}
			// A loss is confirmed a horizon after its gap: Seq jumps at
			// the row that confirms it.
			if missed := d.loss.add(ts); missed > 0 {
				d.seq += missed
				d.lost += missed
			}
			d.prevTS, d.havePr = ts, true
			if d.hasBase {
				t = d.base.at(ts)
			} else {
				t = time.Unix(0, ts)
			}
		} else {
			// No timestamp channel: spread the batch back from the read time.
			t = readAt.Add(-time.Duration(float64(k-1-i) * d.periodN))
		}
		out = append(out, sensors.Sample{Class: sensors.Motion, Time: t, Seq: d.seq, Values: row})
		d.seq++
	}
	return out
}
