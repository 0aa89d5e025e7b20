//go:build linux

package v4l2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edge-agent/edge-agent/sensors/v4l2/videodev"
)

// bufferCount is how many mmap buffers capture asks for: enough that the
// driver always has one to fill while the agent copies another out.
const bufferCount = 4

// silenceCheck is how long Run waits for a frame before it checks that the
// device still exists: a driver that unregisters its node does not always
// wake a waiting poll, but every ioctl on the node then fails with ENODEV.
// A camera that is still there but sends nothing (a UVC camera that
// wedged) is not Run's to judge: the hub's watchdog ends the run after the
// sensor's stall_timeout (Source.StallTimeouts).
const silenceCheck = time.Second

// commonSizes are offered for cameras that describe their sizes as a
// stepwise range rather than a list.
var commonSizes = [][2]uint32{{320, 240}, {640, 480}, {800, 600}, {1280, 720}, {1920, 1080}}

// device is the FrameSource of a real V4L2 node, through videodev. It is
// thin on purpose: it negotiates, copies frames out of the mmap buffers and
// maps failures; everything testable lives in Source.
//
// Concurrency: as FrameSource says; ForceKeyframe may also run concurrently
// with Close (mu keeps it off a closed descriptor).
type device struct {
	path string
	fmt  Format

	mu     sync.Mutex
	vd     *videodev.Device
	closed bool
}

// OpenDevice opens a V4L2 video capture node. A node that is not one (a UVC
// camera's metadata node, an output or codec node) is ErrNotCapture. Errors
// do not repeat the path: Source.Run puts it in front.
func OpenDevice(path string) (FrameSource, error) {
	vd, err := videodev.Open(path)
	if err != nil {
		return nil, err
	}
	c, err := vd.QueryCap()
	if err != nil {
		vd.Close()
		return nil, err
	}
	if !c.IsVideoCapture() {
		vd.Close()
		kind := c.Kind()
		if c.Caps()&videodev.CapStreaming == 0 {
			kind += " without streaming I/O"
		}
		return nil, fmt.Errorf("a %s node (card %q, driver %s): %w", kind, c.Card, c.Driver, ErrNotCapture)
	}
	return &device{path: path, vd: vd}, nil
}

func (d *device) Formats() ([]Format, error) {
	descs, err := d.vd.EnumFormats()
	if err != nil {
		return nil, err
	}
	var out []Format
	for _, fd := range descs {
		sizes, err := d.vd.EnumFrameSizes(fd.PixelFormat)
		if err != nil {
			return nil, err
		}
		if len(sizes) == 0 {
			out = append(out, Format{FourCC: FourCC(fd.PixelFormat)})
		}
		for _, fs := range sizes {
			for _, wh := range expandSizes(fs) {
				out = append(out, Format{FourCC: FourCC(fd.PixelFormat), Width: int(wh[0]), Height: int(wh[1])})
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("device lists no formats")
	}
	return out, nil
}

// expandSizes lists a discrete size as itself and a stepwise or continuous
// range as the common sizes inside it plus its maximum.
func expandSizes(fs videodev.FrameSize) [][2]uint32 {
	if fs.Type == videodev.FrameSizeDiscrete || fs.MinWidth == fs.MaxWidth && fs.MinHeight == fs.MaxHeight {
		return [][2]uint32{{fs.MaxWidth, fs.MaxHeight}}
	}
	var out [][2]uint32
	for _, s := range commonSizes {
		if s[0] < fs.MinWidth || s[0] > fs.MaxWidth || s[1] < fs.MinHeight || s[1] > fs.MaxHeight {
			continue
		}
		if fs.StepWidth > 1 && (s[0]-fs.MinWidth)%fs.StepWidth != 0 || fs.StepHeight > 1 && (s[1]-fs.MinHeight)%fs.StepHeight != 0 {
			continue
		}
		out = append(out, s)
	}
	return append(out, [2]uint32{fs.MaxWidth, fs.MaxHeight})
}

// Configure sets the format and reports what the driver settled on: its
// width and height (drivers adjust sizes they cannot do) and its frame rate.
// A driver that rejects the format outright (EINVAL) is ErrNoFormat.
func (d *device) Configure(want Format) (Format, error) {
	pf, err := d.vd.SetFormat(videodev.PixFormat{Width: uint32(want.Width), Height: uint32(want.Height), PixelFormat: uint32(want.FourCC)})
	if errors.Is(err, unix.EINVAL) {
		return Format{}, fmt.Errorf("set format: %w: %w", ErrNoFormat, err)
	}
	if err != nil {
		return Format{}, fmt.Errorf("set format: %w", err)
	}
	got := Format{FourCC: FourCC(pf.PixelFormat), Width: int(pf.Width), Height: int(pf.Height), FPS: want.FPS}
	if want.FPS > 0 {
		// Not every driver supports VIDIOC_S_PARM; the camera then runs at
		// its own rate and G_PARM may say which.
		_, _ = d.vd.SetFrameInterval(videodev.IntervalFor(want.FPS))
	}
	if iv, err := d.vd.FrameInterval(); err == nil && iv.FPS() > 0 {
		got.FPS = iv.FPS()
	}
	d.fmt = got
	return got, nil
}

// Run streams until ctx ends or the device fails. One poll waits for a
// filled buffer or for ctx (through an eventfd), so cancellation is
// immediate and no OS thread sleeps in a blocking ioctl. Buffers the driver
// flags with V4L2_BUF_FLAG_ERROR are passed on as Corrupt frames (Source
// drops and counts them). Streaming is stopped and the buffers released
// before Run returns, whatever the outcome.
func (d *device) Run(ctx context.Context, out chan<- Frame) (err error) {
	if err := d.vd.StartStreaming(bufferCount); err != nil {
		return fmt.Errorf("start streaming: %w", err)
	}
	defer func() {
		if serr := d.vd.StopStreaming(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop streaming: %w", serr))
		}
	}()
	w, err := newWaker(ctx)
	if err != nil {
		return err
	}
	defer w.close()

	fds := []unix.PollFd{{Fd: int32(d.vd.Fd()), Events: unix.POLLIN}, {Fd: int32(w.fd), Events: unix.POLLIN}}
	var seq uint64
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		n, err := unix.Poll(fds, int(silenceCheck/time.Millisecond))
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if n == 0 {
			if _, err := d.vd.QueryCap(); err != nil {
				return fmt.Errorf("device check: %w", err)
			}
			continue
		}
		rev := fds[0].Revents
		if rev == 0 {
			continue
		}
		buf, err := d.vd.Dequeue()
		if errors.Is(err, unix.EAGAIN) {
			if rev&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
				// vb2 reports POLLERR for a queue that failed or stopped;
				// DQBUF usually says why (EIO, ENODEV) but did not.
				return fmt.Errorf("poll: device reports an error (revents %#x)", rev)
			}
			continue
		}
		if err != nil {
			return err // "VIDIOC_DQBUF: no such device"
		}
		fr := Frame{Format: d.fmt, Seq: seq, Time: time.Now(), Corrupt: buf.Flags&videodev.BufFlagError != 0}
		// The buffer is the driver's mmap memory: copy before re-queueing.
		fr.Data = bytes.Clone(buf.Data)
		if err := d.vd.Requeue(buf.Index); err != nil {
			return fmt.Errorf("requeue: %w", err)
		}
		if len(fr.Data) == 0 && !fr.Corrupt {
			continue // UVC hands out empty buffers for dropped transfers
		}
		select {
		case out <- fr:
			seq++
		case <-ctx.Done():
			return nil
		}
	}
}

// waker makes ctx's end readable on an eventfd, so one poll can wait for a
// frame and for cancellation together.
type waker struct {
	fd    int
	stop  func() bool
	fired chan struct{} // closed when the AfterFunc has finished
}

func newWaker(ctx context.Context) (*waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	w := &waker{fd: fd, fired: make(chan struct{})}
	w.stop = context.AfterFunc(ctx, func() {
		defer close(w.fired)
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(fd, one[:])
	})
	return w, nil
}

// close stops the AfterFunc, waits for it if it already started (so it
// never writes to a closed or reused descriptor) and closes the eventfd.
func (w *waker) close() {
	if !w.stop() {
		<-w.fired
	}
	unix.Close(w.fd)
}

func (d *device) ForceKeyframe() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("force keyframe: %w", unix.EBADF)
	}
	return d.vd.SetControl(videodev.CIDForceKeyFrame, 1)
}

// Close stops streaming, unmaps and frees the buffers and closes the node,
// however far set-up got. Later calls return nil.
func (d *device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return d.vd.Close()
}
