//go:build linux

package v4l2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// cidForceKeyFrame is V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME
// (V4L2_CID_CODEC_BASE 0x00990900 + 229), a button control.
const cidForceKeyFrame webcam.ControlID = 0x009909e5

// noFrameTimeout is how long a streaming camera may stay silent before Run
// reports it as failed (a UVC camera that wedged, a cable that came loose
// without a disconnect).
const noFrameTimeout = 10 * time.Second

// commonSizes are offered for cameras that describe their sizes as a
// stepwise range rather than a list.
var commonSizes = [][2]uint32{{320, 240}, {640, 480}, {800, 600}, {1280, 720}, {1920, 1080}}

// device is the FrameSource of a real V4L2 node, through blackjack/webcam.
// It is thin on purpose: it negotiates, copies frames out of the mmap
// buffers and maps timeouts; everything testable lives in Source.
type device struct {
	path string
	cam  *webcam.Webcam
	fmt  Format
}

// OpenDevice opens a V4L2 capture node.
func OpenDevice(path string) (FrameSource, error) {
	cam, err := webcam.Open(path)
	if err != nil {
		return nil, err
	}
	return &device{path: path, cam: cam}, nil
}

func (d *device) Formats() ([]Format, error) {
	var out []Format
	for pf := range d.cam.GetSupportedFormats() {
		for _, fs := range d.cam.GetSupportedFrameSizes(pf) {
			for _, wh := range expandSizes(fs) {
				out = append(out, Format{FourCC: FourCC(pf), Width: int(wh[0]), Height: int(wh[1])})
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("device lists no formats")
	}
	return out, nil
}

// expandSizes lists a discrete size as itself and a stepwise range as the
// common sizes inside it plus its maximum.
func expandSizes(fs webcam.FrameSize) [][2]uint32 {
	if fs.StepWidth == 0 && fs.StepHeight == 0 || fs.MinWidth == fs.MaxWidth && fs.MinHeight == fs.MaxHeight {
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

func (d *device) Configure(want Format) (Format, error) {
	pf, w, h, err := d.cam.SetImageFormat(webcam.PixelFormat(want.FourCC), uint32(want.Width), uint32(want.Height))
	if err != nil {
		return Format{}, fmt.Errorf("set format: %w", err)
	}
	got := Format{FourCC: FourCC(pf), Width: int(w), Height: int(h), FPS: want.FPS}
	if want.FPS > 0 {
		// Not every driver supports VIDIOC_S_PARM; the camera then runs at
		// its own rate and GetFramerate says which.
		_ = d.cam.SetFramerate(float32(want.FPS))
	}
	if fps, err := d.cam.GetFramerate(); err == nil && fps > 0 {
		got.FPS = float64(fps)
	}
	d.fmt = got
	return got, nil
}

func (d *device) Run(ctx context.Context, out chan<- Frame) error {
	// The library's default is 256 mmap buffers; 4 is what capture needs.
	if err := d.cam.SetBufferCount(4); err != nil {
		return fmt.Errorf("set buffer count: %w", err)
	}
	if err := d.cam.StartStreaming(); err != nil {
		return fmt.Errorf("start streaming: %w", err)
	}
	defer d.cam.StopStreaming()
	var seq uint64
	last := time.Now()
	for ctx.Err() == nil {
		// The timeout is in seconds and blocks this OS thread; one second
		// bounds how long cancellation takes.
		err := d.cam.WaitForFrame(1)
		var to *webcam.Timeout
		switch {
		case errors.As(err, &to):
			if time.Since(last) > noFrameTimeout {
				return fmt.Errorf("no frame for %s", noFrameTimeout)
			}
			continue
		case err != nil:
			return fmt.Errorf("wait for frame: %w", err)
		}
		buf, idx, err := d.cam.GetFrame()
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return fmt.Errorf("dequeue: %w", err)
		}
		// The buffer is the driver's mmap memory: copy before re-queueing.
		data := bytes.Clone(buf)
		if err := d.cam.ReleaseFrame(idx); err != nil {
			return fmt.Errorf("requeue: %w", err)
		}
		if len(data) == 0 {
			continue
		}
		last = time.Now()
		select {
		case out <- Frame{Format: d.fmt, Seq: seq, Time: last, Data: data}:
			seq++
		case <-ctx.Done():
		}
	}
	return nil
}

func (d *device) ForceKeyframe() error { return d.cam.SetControl(cidForceKeyFrame, 1) }

func (d *device) Close() error { return d.cam.Close() }
