//go:build linux

package videodev

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernel is the seam between Device and the system calls it makes. The
// production implementation (sysKernel) calls the kernel; tests substitute a
// scripted driver to walk every failure path of StartStreaming and Close.
type kernel interface {
	ioctl(fd int, req uintptr, arg unsafe.Pointer) error
	mmap(fd int, offset int64, length int) ([]byte, error)
	munmap(b []byte) error
	close(fd int) error
}

type sysKernel struct{}

func (sysKernel) ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func (sysKernel) mmap(fd int, offset int64, length int) ([]byte, error) {
	return unix.Mmap(fd, offset, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func (sysKernel) munmap(b []byte) error { return unix.Munmap(b) }
func (sysKernel) close(fd int) error    { return unix.Close(fd) }

// Device is one open V4L2 node.
//
// Concurrency: a Device is used by one goroutine at a time, except that
// SetControl, GetControl and QueryCap may be called while another goroutine
// streams (the kernel serialises ioctls on the node). Close must not run
// concurrently with any other method; callers that let another goroutine set
// controls guard Close themselves.
type Device struct {
	path string
	fd   int // -1 once closed
	k    kernel

	requested bool     // REQBUFS granted buffers that must be freed
	bufs      [][]byte // mmap'd buffers by index; nil entries are not mapped
	streaming bool     // STREAMON succeeded
}

// Open opens path (O_RDWR, non-blocking: Dequeue never blocks, callers wait
// with poll on Fd). Its error is the bare errno (ENOENT, EACCES, EBUSY);
// callers name the path.
func Open(path string) (*Device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &Device{path: path, fd: fd, k: sysKernel{}}, nil
}

// Path is the node's path as opened.
func (d *Device) Path() string { return d.path }

// Fd is the file descriptor, for poll. It is -1 after Close.
func (d *Device) Fd() int { return d.fd }

func (d *Device) ioctl(req uintptr, arg unsafe.Pointer) error {
	if d.fd < 0 {
		return fmt.Errorf("%s: %w", ioctlNames[req], unix.EBADF)
	}
	if err := d.k.ioctl(d.fd, req, arg); err != nil {
		return fmt.Errorf("%s: %w", ioctlNames[req], err)
	}
	return nil
}

// Capability is the answer to VIDIOC_QUERYCAP.
type Capability struct {
	Driver, Card, BusInfo string
	Version               uint32
	// Capabilities are the whole physical device's; DeviceCaps are this
	// node's (valid when Capabilities has CapDeviceCaps, which every driver
	// since Linux 3.3 sets).
	Capabilities, DeviceCaps uint32
}

// Caps returns the capabilities of this node: DeviceCaps when the driver
// reports them, else the device-wide Capabilities (pre-3.3 drivers).
func (c Capability) Caps() uint32 {
	if c.Capabilities&CapDeviceCaps != 0 {
		return c.DeviceCaps
	}
	return c.Capabilities
}

// IsVideoCapture reports whether the node is a single-planar video capture
// node this package can stream from: video capture with streaming I/O, and
// not an output, memory-to-memory or touch node (touch sensors also set
// V4L2_CAP_VIDEO_CAPTURE).
func (c Capability) IsVideoCapture() bool {
	caps := c.Caps()
	return caps&CapVideoCapture != 0 && caps&CapStreaming != 0 &&
		caps&(CapVideoOutput|CapVideoM2M|CapVideoM2MMplane|CapTouch) == 0
}

// Kind names what the node is, for messages and listings ("video capture",
// "metadata capture", "video output", "memory-to-memory", ...).
func (c Capability) Kind() string {
	caps := c.Caps()
	var kinds []string
	for _, k := range []struct {
		bit  uint32
		name string
	}{
		{CapVideoM2M | CapVideoM2MMplane, "memory-to-memory"},
		{CapTouch, "touch"},
		{CapVideoCapture, "video capture"},
		{CapVideoCaptureMplane, "multi-planar video capture"},
		{CapVideoOutput | CapVideoOutputMplane, "video output"},
		{CapMetaCapture, "metadata capture"},
		{CapMetaOutput, "metadata output"},
		{CapVBICapture, "VBI capture"},
		{CapSDRCapture, "SDR capture"},
	} {
		if caps&k.bit != 0 {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) == 0 {
		return fmt.Sprintf("caps %#08x", caps)
	}
	return strings.Join(kinds, ", ")
}

// QueryCap issues VIDIOC_QUERYCAP.
func (d *Device) QueryCap() (Capability, error) {
	var c v4l2Capability
	if err := d.ioctl(vidiocQuerycap, unsafe.Pointer(&c)); err != nil {
		return Capability{}, err
	}
	return Capability{
		Driver: cString(c.Driver[:]), Card: cString(c.Card[:]), BusInfo: cString(c.BusInfo[:]),
		Version: c.Version, Capabilities: c.Capabilities, DeviceCaps: c.DeviceCaps,
	}, nil
}

// FormatDesc is one entry of VIDIOC_ENUM_FMT.
type FormatDesc struct {
	PixelFormat uint32
	Description string
	Flags       uint32
}

// EnumFormats lists the node's video capture pixel formats.
func (d *Device) EnumFormats() ([]FormatDesc, error) {
	var out []FormatDesc
	for i := uint32(0); ; i++ {
		fd := v4l2Fmtdesc{Index: i, Type: bufTypeVideoCapture}
		err := d.ioctl(vidiocEnumFmt, unsafe.Pointer(&fd))
		if errors.Is(err, unix.EINVAL) {
			return out, nil // past the last index
		}
		if err != nil {
			return out, err
		}
		out = append(out, FormatDesc{PixelFormat: fd.PixelFormat, Description: cString(fd.Description[:]), Flags: fd.Flags})
	}
}

// FrameSize is one entry of VIDIOC_ENUM_FRAMESIZES. A discrete size has
// Min == Max and zero steps; a continuous range has steps of 1.
type FrameSize struct {
	Type                             uint32
	MinWidth, MaxWidth, StepWidth    uint32
	MinHeight, MaxHeight, StepHeight uint32
}

// String is "640x480" for a discrete size and "[min-max;step]x[min-max;step]"
// for a range.
func (s FrameSize) String() string {
	if s.Type == FrameSizeDiscrete {
		return fmt.Sprintf("%dx%d", s.MaxWidth, s.MaxHeight)
	}
	return fmt.Sprintf("[%d-%d;%d]x[%d-%d;%d]", s.MinWidth, s.MaxWidth, s.StepWidth, s.MinHeight, s.MaxHeight, s.StepHeight)
}

// EnumFrameSizes lists the frame sizes of pixelFormat. A driver that does not
// implement the ioctl gives an empty list and no error.
func (d *Device) EnumFrameSizes(pixelFormat uint32) ([]FrameSize, error) {
	var out []FrameSize
	for i := uint32(0); ; i++ {
		fs := v4l2Frmsizeenum{Index: i, PixelFormat: pixelFormat}
		err := d.ioctl(vidiocEnumFramesizes, unsafe.Pointer(&fs))
		if errors.Is(err, unix.EINVAL) || i == 0 && errors.Is(err, unix.ENOTTY) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		u := fs.Union
		switch fs.Type {
		case FrameSizeDiscrete:
			out = append(out, FrameSize{Type: fs.Type, MinWidth: u[0], MaxWidth: u[0], MinHeight: u[1], MaxHeight: u[1]})
		case FrameSizeContinuous, FrameSizeStepwise:
			// Only index 0 exists for a range.
			return append(out, FrameSize{Type: fs.Type, MinWidth: u[0], MaxWidth: u[1], StepWidth: u[2],
				MinHeight: u[3], MaxHeight: u[4], StepHeight: u[5]}), nil
		default:
			return out, fmt.Errorf("VIDIOC_ENUM_FRAMESIZES: unknown type %d", fs.Type)
		}
	}
}

// PixFormat is the part of struct v4l2_pix_format a capture client sets and
// reads back.
type PixFormat struct {
	Width, Height, PixelFormat, Field uint32
	BytesPerLine, SizeImage           uint32
}

func (p *PixFormat) from(v *v4l2PixFormat) {
	*p = PixFormat{Width: v.Width, Height: v.Height, PixelFormat: v.PixelFormat, Field: v.Field,
		BytesPerLine: v.BytesPerLine, SizeImage: v.SizeImage}
}

// SetFormat issues VIDIOC_S_FMT for video capture with want's size and pixel
// format (any field order) and returns the format the driver settled on,
// which may differ: drivers adjust sizes and formats they cannot do.
func (d *Device) SetFormat(want PixFormat) (PixFormat, error) {
	f := v4l2Format{Type: bufTypeVideoCapture}
	p := f.pix()
	p.Width, p.Height, p.PixelFormat, p.Field = want.Width, want.Height, want.PixelFormat, fieldAny
	if err := d.ioctl(vidiocSFmt, unsafe.Pointer(&f)); err != nil {
		return PixFormat{}, err
	}
	var got PixFormat
	got.from(p)
	return got, nil
}

// Format issues VIDIOC_G_FMT for video capture.
func (d *Device) Format() (PixFormat, error) {
	f := v4l2Format{Type: bufTypeVideoCapture}
	if err := d.ioctl(vidiocGFmt, unsafe.Pointer(&f)); err != nil {
		return PixFormat{}, err
	}
	var got PixFormat
	got.from(f.pix())
	return got, nil
}

// Fract is a frame interval in seconds (Numerator/Denominator).
type Fract struct{ Numerator, Denominator uint32 }

// FPS is the rate the interval gives, 0 for an unset interval.
func (f Fract) FPS() float64 {
	if f.Numerator == 0 || f.Denominator == 0 {
		return 0
	}
	return float64(f.Denominator) / float64(f.Numerator)
}

// IntervalFor returns the frame interval for fps, reduced: 15 → 1/15,
// 7.5 → 2/15, 29.97 → 1000/29970 reduced.
func IntervalFor(fps float64) Fract {
	n, d := uint32(1000), uint32(math.Round(fps*1000))
	if d == 0 {
		return Fract{}
	}
	a, b := n, d
	for b != 0 {
		a, b = b, a%b
	}
	return Fract{Numerator: n / a, Denominator: d / a}
}

// SetFrameInterval issues VIDIOC_S_PARM with the capture time per frame and
// returns the interval the driver chose. It returns a zero Fract and no error
// when the driver cannot set the rate (no V4L2_CAP_TIMEPERFRAME).
func (d *Device) SetFrameInterval(want Fract) (Fract, error) {
	p := v4l2Streamparm{Type: bufTypeVideoCapture}
	c := p.capture()
	c.TimePerFrame = v4l2Fract(want)
	if err := d.ioctl(vidiocSParm, unsafe.Pointer(&p)); err != nil {
		return Fract{}, err
	}
	if c.Capability&capTimePerFrame == 0 {
		return Fract{}, nil
	}
	return Fract(c.TimePerFrame), nil
}

// FrameInterval issues VIDIOC_G_PARM and returns the capture time per frame
// (zero when the driver does not report it).
func (d *Device) FrameInterval() (Fract, error) {
	p := v4l2Streamparm{Type: bufTypeVideoCapture}
	if err := d.ioctl(vidiocGParm, unsafe.Pointer(&p)); err != nil {
		return Fract{}, err
	}
	c := p.capture()
	if c.Capability&capTimePerFrame == 0 {
		return Fract{}, nil
	}
	return Fract(c.TimePerFrame), nil
}

// Control describes one control (VIDIOC_QUERYCTRL).
type Control struct {
	ID                          uint32
	Type                        uint32
	Name                        string
	Minimum, Maximum, Step, Def int32
	Flags                       uint32
}

// Controls lists the node's controls (class headings and disabled controls
// included; callers filter by Type and Flags).
func (d *Device) Controls() ([]Control, error) {
	var out []Control
	id := uint32(0)
	for {
		q := v4l2Queryctrl{ID: id | ctrlFlagNextCtrl}
		err := d.ioctl(vidiocQueryctrl, unsafe.Pointer(&q))
		if errors.Is(err, unix.EINVAL) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, Control{ID: q.ID, Type: q.Type, Name: cString(q.Name[:]), Minimum: q.Minimum,
			Maximum: q.Maximum, Step: q.Step, Def: q.DefaultValue, Flags: q.Flags})
		id = q.ID
	}
}

// ControlByName finds a control by its exact name.
func (d *Device) ControlByName(name string) (Control, error) {
	cs, err := d.Controls()
	if err != nil {
		return Control{}, err
	}
	for _, c := range cs {
		if c.Name == name {
			return c, nil
		}
	}
	return Control{}, fmt.Errorf("control %q: %w", name, unix.ENOENT)
}

// SetControl issues VIDIOC_S_CTRL (a button control is pressed by setting
// any value).
func (d *Device) SetControl(id uint32, value int32) error {
	c := v4l2Control{ID: id, Value: value}
	if err := d.ioctl(vidiocSCtrl, unsafe.Pointer(&c)); err != nil {
		return fmt.Errorf("control %#x: %w", id, err)
	}
	return nil
}

// GetControl issues VIDIOC_G_CTRL.
func (d *Device) GetControl(id uint32) (int32, error) {
	c := v4l2Control{ID: id}
	if err := d.ioctl(vidiocGCtrl, unsafe.Pointer(&c)); err != nil {
		return 0, fmt.Errorf("control %#x: %w", id, err)
	}
	return c.Value, nil
}

// StartStreaming asks the driver for count mmap buffers (REQBUFS), maps each
// (QUERYBUF, mmap), queues them (QBUF) and starts capture (STREAMON). On any
// failure it unmaps what it mapped and frees the driver's buffers before it
// returns, so the node can be configured again at once (by this Device or,
// after Close, by another open). The driver may grant fewer or more buffers
// than count.
func (d *Device) StartStreaming(count uint32) (err error) {
	if d.requested || d.streaming {
		return errors.New("start streaming: already started")
	}
	defer func() {
		if err != nil {
			if rerr := d.release(); rerr != nil {
				err = errors.Join(err, fmt.Errorf("release after failure: %w", rerr))
			}
		}
	}()
	req := v4l2Requestbuffers{Count: count, Type: bufTypeVideoCapture, Memory: memoryMmap}
	// Marked first: a driver that fails REQBUFS halfway may still hold
	// buffers, and REQBUFS 0 is harmless when it holds none.
	d.requested = true
	if err := d.ioctl(vidiocReqbufs, unsafe.Pointer(&req)); err != nil {
		return err
	}
	if req.Count == 0 {
		return fmt.Errorf("VIDIOC_REQBUFS: driver granted no buffers: %w", unix.ENOMEM)
	}
	d.bufs = make([][]byte, req.Count)
	for i := range d.bufs {
		b := v4l2Buffer{Index: uint32(i), Type: bufTypeVideoCapture, Memory: memoryMmap}
		if err := d.ioctl(vidiocQuerybuf, unsafe.Pointer(&b)); err != nil {
			return fmt.Errorf("buffer %d: %w", i, err)
		}
		if b.Length == 0 {
			return fmt.Errorf("buffer %d: driver reports length 0: %w", i, unix.EINVAL)
		}
		m, err := d.k.mmap(d.fd, int64(uint32(b.M)), int(b.Length))
		if err != nil {
			return fmt.Errorf("mmap buffer %d: %w", i, err)
		}
		d.bufs[i] = m
	}
	for i := range d.bufs {
		if err := d.Requeue(uint32(i)); err != nil {
			return err
		}
	}
	typ := int32(bufTypeVideoCapture)
	if err := d.ioctl(vidiocStreamon, unsafe.Pointer(&typ)); err != nil {
		return err
	}
	d.streaming = true
	return nil
}

// Buffers is how many buffers are mapped (0 when not streaming).
func (d *Device) Buffers() int { return len(d.bufs) }

// Buffer is one dequeued capture buffer. Data aliases the mmap'd memory: it
// is valid only until the buffer is re-queued with Requeue (or the stream
// stops), so copy it first.
type Buffer struct {
	Index     uint32
	Data      []byte // the bytes used
	Flags     uint32 // BufFlag*; BufFlagError marks a frame the driver knows is corrupt
	Sequence  uint32
	Timestamp time.Duration // the driver's timestamp (usually CLOCK_MONOTONIC)
}

// Dequeue issues VIDIOC_DQBUF. On a non-blocking node it returns an error
// wrapping unix.EAGAIN when no buffer is ready.
func (d *Device) Dequeue() (Buffer, error) {
	b := v4l2Buffer{Type: bufTypeVideoCapture, Memory: memoryMmap}
	if err := d.ioctl(vidiocDqbuf, unsafe.Pointer(&b)); err != nil {
		return Buffer{}, err
	}
	if int(b.Index) >= len(d.bufs) || d.bufs[b.Index] == nil {
		return Buffer{}, fmt.Errorf("VIDIOC_DQBUF: driver returned buffer %d of %d", b.Index, len(d.bufs))
	}
	m := d.bufs[b.Index]
	n := int(b.BytesUsed)
	if n > len(m) {
		n = len(m)
	}
	ts := time.Duration(b.Timestamp.Sec)*time.Second + time.Duration(b.Timestamp.Usec)*time.Microsecond
	return Buffer{Index: b.Index, Data: m[:n:n], Flags: b.Flags, Sequence: b.Sequence, Timestamp: ts}, nil
}

// Requeue hands buffer index back to the driver (VIDIOC_QBUF).
func (d *Device) Requeue(index uint32) error {
	b := v4l2Buffer{Index: index, Type: bufTypeVideoCapture, Memory: memoryMmap}
	if err := d.ioctl(vidiocQbuf, unsafe.Pointer(&b)); err != nil {
		return fmt.Errorf("buffer %d: %w", index, err)
	}
	return nil
}

// StopStreaming stops capture (STREAMOFF), unmaps every buffer and frees
// them in the driver (REQBUFS 0). It is idempotent and safe after a failed
// StartStreaming. Errors that only say the device is gone (ENODEV) are not
// reported: an unplugged device has nothing left to release.
func (d *Device) StopStreaming() error { return d.release() }

func (d *Device) release() error {
	var errs []error
	keep := func(err error) {
		if err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, err)
		}
	}
	if d.requested || d.streaming {
		// STREAMOFF also returns buffers still queued from a STREAMON that
		// failed, or from QBUFs before it; allowed when not streaming.
		typ := int32(bufTypeVideoCapture)
		keep(d.ioctl(vidiocStreamoff, unsafe.Pointer(&typ)))
		d.streaming = false
	}
	for i, m := range d.bufs {
		if m != nil {
			// A failed munmap leaves the mapping, and with it the queue,
			// busy: report it, there is nothing better to do.
			if err := d.k.munmap(m); err != nil {
				errs = append(errs, fmt.Errorf("munmap buffer %d: %w", i, err))
			}
			d.bufs[i] = nil
		}
	}
	d.bufs = nil
	if d.requested {
		req := v4l2Requestbuffers{Count: 0, Type: bufTypeVideoCapture, Memory: memoryMmap}
		keep(d.ioctl(vidiocReqbufs, unsafe.Pointer(&req)))
		d.requested = false
	}
	return errors.Join(errs...)
}

// Close stops streaming, releases the buffers and closes the node. It is
// idempotent: later calls return nil.
func (d *Device) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := d.release()
	if cerr := d.k.close(d.fd); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close %s: %w", d.path, cerr))
	}
	d.fd = -1
	return err
}
