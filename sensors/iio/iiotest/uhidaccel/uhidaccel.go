// Package uhidaccel creates a HID sensor-hub 3D accelerometer from user
// space through /dev/uhid. The kernel's own drivers do the rest:
// hid-sensor-hub binds the HID device, hid-sensor-accel-3d turns it into an
// IIO device named accel_3d (in_accel_{x,y,z}_raw, in_accel_scale,
// sampling_frequency, scan type le:s16/32>>0, a trigger and
// /dev/iio:deviceN), so the iio package's polling and buffered capture run
// through the real kernel code on a virtual board with no sensor.
//
// The device answers the driver's GET_REPORT and SET_REPORT requests for its
// properties (report interval, reporting and power state, sensitivity) and
// for the current input report, and sends input reports while the driver
// has it open and reporting: at the report interval the driver set (the
// sampling_frequency written to the IIO device) or at a rate the test gives,
// with values, lateness and dropped reports the test chooses. Close destroys
// it: for the kernel, an unplug.
//
// Needs root (or access to /dev/uhid) and `modprobe uhid hid-sensor-hub
// hid-sensor-accel-3d`; load the drivers before Open so that hid-generic
// does not bind the device first.
package uhidaccel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Device. The zero value is a device that follows the
// driver's report interval and reports (0, 0, 1 g).
type Options struct {
	// Name is the HID device name (default "edge-agent virtual accelerometer").
	Name string
	// Path is the uhid node (default /dev/uhid).
	Path string
	// Rate, when > 0, is the rate (Hz) input reports are sent at whatever
	// report interval the driver asked for; 0 follows the driver.
	Rate float64
	// MinInterval is the shortest report interval the device accepts
	// (default 5 ms, 200 Hz): a driver asking for a faster rate reads this
	// one back.
	MinInterval time.Duration
	// Late returns how late input report n is sent (arrival jitter seen by
	// the kernel's timestamps); nil sends every report on time. Reports
	// are paced on start + n·period, so a late report does not delay the
	// ones after it.
	Late func(n uint64) time.Duration
	// Drop says input report n is never sent; nil sends all.
	Drop func(n uint64) bool
	// Values returns the counts (milli-g) of input report n; nil uses the
	// values last given to Set.
	Values func(n uint64) [3]int16
	// DeviceTimestamps makes every report carry the CLOCK_MONOTONIC time
	// it was due (lateness included), as sensor hubs with a timestamp
	// field do; the driver then stamps the scan with it instead of the
	// arrival time, so a board too busy to send on time still yields
	// evenly spaced timestamps. The IIO device's current_timestamp_clock
	// must be monotonic (the iio source sets it). Off: the driver stamps
	// each report when it arrives.
	DeviceTimestamps bool
}

// DefaultInterval is the report interval before the driver sets one, and
// what a request for interval 0 ("device default") gets.
const DefaultInterval = 10 * time.Millisecond

const maxInterval = 10 * time.Second

// uhid event types and sizes (include/uapi/linux/uhid.h). An event is a u32
// type followed by a packed union whose largest member (create2) makes the
// struct 4376 bytes; the kernel copies what it is given, so shorter writes
// are fine.
const (
	evDestroy        = 1
	evStart          = 2
	evStop           = 3
	evOpen           = 4
	evClose          = 5
	evOutput         = 6
	evGetReport      = 9
	evGetReportReply = 10
	evCreate2        = 11
	evInput2         = 12
	evSetReport      = 13
	evSetReportReply = 14

	eventSize = 4 + 128 + 64 + 64 + 2 + 2 + 4 + 4 + 4 + 4 + 4096

	rtypeFeature = 0
	rtypeInput   = 2

	busVirtual  = 0x06
	errnoEINVAL = 22
	errnoEIO    = 5
)

// conn is the uhid character device: a Read returns one event, a Write takes
// one. Tests stand in for the kernel with their own conn.
type conn interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Close() error
}

// Device is one virtual accelerometer. Its methods are safe for concurrent
// use. It owns two goroutines, the event reader (answers the driver) and the
// sender (input reports); Close stops both and waits for them.
type Device struct {
	opts Options
	c    conn

	mu     sync.Mutex
	feat   features
	opened bool
	values [3]int16
	err    error // first write error of the sender

	changed chan struct{} // cap 1: the state the sender depends on changed
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	sent, dropped atomic.Uint64
}

// Open creates the HID device. The drivers probe it asynchronously: its IIO
// device appears shortly after Open returns.
func Open(opts Options) (*Device, error) {
	if opts.Path == "" {
		opts.Path = "/dev/uhid"
	}
	c, err := openFD(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("uhidaccel: %w", err)
	}
	d, err := newDevice(c, opts)
	if err != nil {
		c.release()
		return nil, err
	}
	return d, nil
}

func newDevice(c conn, opts Options) (*Device, error) {
	if opts.Name == "" {
		opts.Name = "edge-agent virtual accelerometer"
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = 5 * time.Millisecond
	}
	d := &Device{
		opts: opts, c: c,
		feat:    features{reporting: ReportingNoEvents, power: PowerD4Off, intervalMs: uint32(DefaultInterval / time.Millisecond)},
		values:  [3]int16{0, 0, 1000},
		changed: make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	if _, err := c.Write(create2(opts.Name)); err != nil {
		return nil, fmt.Errorf("uhidaccel: create: %w", err)
	}
	d.wg.Add(2)
	go d.readLoop()
	go d.sendLoop()
	return d, nil
}

// create2 builds the UHID_CREATE2 event.
func create2(name string) []byte {
	b := make([]byte, eventSize)
	binary.NativeEndian.PutUint32(b, evCreate2)
	copy(b[4:4+127], name)
	copy(b[4+128:4+128+63], "edge-agent/vboard")
	o := 4 + 128 + 64 + 64
	binary.NativeEndian.PutUint16(b[o:], uint16(len(descriptor)))
	binary.NativeEndian.PutUint16(b[o+2:], busVirtual)
	binary.NativeEndian.PutUint32(b[o+4:], 0x1d6b) // vendor: Linux Foundation
	binary.NativeEndian.PutUint32(b[o+8:], 0x0a33) // product: arbitrary
	binary.NativeEndian.PutUint32(b[o+12:], 1)     // version
	copy(b[o+20:], descriptor)                     // after country
	return b
}

// Set sets the counts (milli-g) the device reports from now on, unless
// Options.Values chooses them.
func (d *Device) Set(x, y, z int16) {
	d.mu.Lock()
	d.values = [3]int16{x, y, z}
	d.mu.Unlock()
}

// Sent counts the input reports written to the kernel.
func (d *Device) Sent() uint64 { return d.sent.Load() }

// Dropped counts the input reports Options.Drop left out.
func (d *Device) Dropped() uint64 { return d.dropped.Load() }

// Interval is the report interval the driver set (or the default).
func (d *Device) Interval() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Duration(d.feat.intervalMs) * time.Millisecond
}

// Streaming says whether the device is sending input reports: the driver
// opened it and asked for events.
func (d *Device) Streaming() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opened && d.feat.streams()
}

// Err returns the first error writing an input report, if any.
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Close destroys the HID device (the kernel unregisters the IIO device
// before the destroy returns), closes /dev/uhid and waits for the device's
// goroutines. Calling it again does nothing.
func (d *Device) Close() error {
	var err error
	d.once.Do(func() {
		close(d.stop)
		ev := make([]byte, 4)
		binary.NativeEndian.PutUint32(ev, evDestroy)
		if _, werr := d.c.Write(ev); werr != nil {
			err = fmt.Errorf("uhidaccel: destroy: %w", werr)
		}
		if cerr := d.c.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("uhidaccel: close: %w", cerr)
		}
		d.wg.Wait()
	})
	return err
}

func (d *Device) notify() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// readLoop answers the kernel until the file is closed.
func (d *Device) readLoop() {
	defer d.wg.Done()
	buf := make([]byte, eventSize)
	for {
		n, err := d.c.Read(buf)
		if err != nil {
			return
		}
		if n < 4 {
			continue
		}
		ev := buf[:n]
		switch binary.NativeEndian.Uint32(ev) {
		case evOpen:
			d.setOpened(true)
		case evClose:
			d.setOpened(false)
		case evGetReport:
			if n < 10 {
				continue
			}
			id, rnum, rtype := binary.NativeEndian.Uint32(ev[4:]), ev[8], ev[9]
			data, errno := d.getReport(rnum, rtype)
			d.reply(getReportReply(id, data, errno))
		case evSetReport:
			if n < 12 {
				continue
			}
			id, rnum, rtype := binary.NativeEndian.Uint32(ev[4:]), ev[8], ev[9]
			size := int(binary.NativeEndian.Uint16(ev[10:]))
			data := ev[12:min(n, 12+size)]
			d.reply(setReportReply(id, d.setReport(rnum, rtype, data)))
		case evStart, evStop, evOutput:
		}
	}
}

// reply writes an answer; a failure means the device is being destroyed,
// which the kernel handles by failing the request.
func (d *Device) reply(ev []byte) { _, _ = d.c.Write(ev) }

func (d *Device) setOpened(v bool) {
	d.mu.Lock()
	d.opened = v
	d.mu.Unlock()
	d.notify()
}

// getReport returns the report's bytes, or an errno.
func (d *Device) getReport(rnum, rtype byte) ([]byte, uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case rnum == featureReportID && rtype == rtypeFeature:
		return d.feat.encode(), 0
	case rnum == inputReportID && rtype == rtypeInput:
		return encodeInput(d.values, 0), 0
	}
	return nil, errnoEINVAL
}

// setReport applies feature report 1 as the driver wrote it; the interval is
// clamped to what the device can do, and the driver reads that back.
func (d *Device) setReport(rnum, rtype byte, data []byte) uint16 {
	if rnum != featureReportID || rtype != rtypeFeature {
		return errnoEINVAL
	}
	f, ok := decodeFeatures(data)
	if !ok {
		return errnoEIO
	}
	iv := time.Duration(f.intervalMs) * time.Millisecond
	switch {
	case iv == 0:
		iv = DefaultInterval
	case iv < d.opts.MinInterval:
		iv = d.opts.MinInterval
	case iv > maxInterval:
		iv = maxInterval
	}
	f.intervalMs = uint32(iv / time.Millisecond)
	d.mu.Lock()
	d.feat = f
	d.mu.Unlock()
	d.notify()
	return 0
}

func getReportReply(id uint32, data []byte, errno uint16) []byte {
	b := make([]byte, 12+len(data))
	binary.NativeEndian.PutUint32(b, evGetReportReply)
	binary.NativeEndian.PutUint32(b[4:], id)
	binary.NativeEndian.PutUint16(b[8:], errno)
	binary.NativeEndian.PutUint16(b[10:], uint16(len(data)))
	copy(b[12:], data)
	return b
}

func setReportReply(id uint32, errno uint16) []byte {
	b := make([]byte, 10)
	binary.NativeEndian.PutUint32(b, evSetReportReply)
	binary.NativeEndian.PutUint32(b[4:], id)
	binary.NativeEndian.PutUint16(b[8:], errno)
	return b
}

func input2(report []byte) []byte {
	b := make([]byte, 6+len(report))
	binary.NativeEndian.PutUint32(b, evInput2)
	binary.NativeEndian.PutUint16(b[4:], uint16(len(report)))
	copy(b[6:], report)
	return b
}

// period is the spacing of input reports now, and whether to send them.
func (d *Device) period() (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := time.Duration(d.feat.intervalMs) * time.Millisecond
	if d.opts.Rate > 0 {
		p = time.Duration(float64(time.Second) / d.opts.Rate)
	}
	return p, d.opened && d.feat.streams()
}

// sendLoop sends input reports while streaming, paced on anchor + k·period
// (re-anchored whenever streaming starts or the period changes), so that the
// count over a run is rate × seconds whatever the scheduling delays, and a
// report sent late does not shift the ones after it.
func (d *Device) sendLoop() {
	defer d.wg.Done()
	var n uint64 // index of the next report over the device's life
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		period, on := d.period()
		if !on {
			select {
			case <-d.stop:
				return
			case <-d.changed:
				continue
			}
		}
		anchor, anchorMono := time.Now(), monotonicNow()
		for k := int64(0); ; k++ {
			due := anchor.Add(time.Duration(k) * period)
			if d.opts.Late != nil {
				due = due.Add(d.opts.Late(n))
			}
			timer.Reset(max(0, time.Until(due)))
			select {
			case <-d.stop:
				return
			case <-d.changed:
				// Look at the new state; an unchanged one keeps the grid.
				// (Stop leaves no stale tick behind: Go ≥ 1.23 timers.)
				timer.Stop()
				if p, ok := d.period(); ok && p == period {
					k--
					continue
				}
			case <-timer.C:
				var ts uint64
				if d.opts.DeviceTimestamps && anchorMono > 0 {
					ts = uint64((anchorMono + int64(due.Sub(anchor))) / 1000)
				}
				if !d.sendOne(n, ts) {
					return
				}
				n++
				continue
			}
			break
		}
	}
}

// sendOne sends (or drops) report n stamped tsMicros (0: none); false when
// writing failed.
func (d *Device) sendOne(n, tsMicros uint64) bool {
	if d.opts.Drop != nil && d.opts.Drop(n) {
		d.dropped.Add(1)
		return true
	}
	d.mu.Lock()
	v := d.values
	d.mu.Unlock()
	if d.opts.Values != nil {
		v = d.opts.Values(n)
	}
	if _, err := d.c.Write(input2(encodeInput(v, tsMicros))); err != nil {
		d.mu.Lock()
		if d.err == nil {
			d.err = fmt.Errorf("uhidaccel: input report %d: %w", n, err)
		}
		d.mu.Unlock()
		return !errors.Is(err, os.ErrClosed)
	}
	d.sent.Add(1)
	return true
}
