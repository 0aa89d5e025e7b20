package v4l2

import (
	"context"
	"fmt"
	"time"
)

// FourCC is a V4L2 pixel format code (struct v4l2_pix_format's pixelformat).
type FourCC uint32

// Pixel formats the driver can deliver.
const (
	FourCCMJPEG FourCC = 0x47504A4D // "MJPG": one JPEG per buffer, passed through
	FourCCYUYV  FourCC = 0x56595559 // "YUYV": packed 4:2:2, converted to JPEG
	FourCCH264  FourCC = 0x34363248 // "H264": Annex-B, one access unit per buffer
)

// String returns the four characters ("MJPG").
func (f FourCC) String() string {
	b := []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// fourCCByName maps the config's format names to codes.
var fourCCByName = map[string]FourCC{"mjpeg": FourCCMJPEG, "yuyv": FourCCYUYV, "h264": FourCCH264}

// Format is one capture mode: pixel format, size and (for Configure's answer)
// the frame rate the driver settled on.
type Format struct {
	FourCC        FourCC
	Width, Height int
	FPS           float64
}

func (f Format) String() string {
	return fmt.Sprintf("%s %dx%d@%g", f.FourCC, f.Width, f.Height, f.FPS)
}

// Frame is one captured buffer. Data is owned by the receiver: the device
// adapter has already copied it out of the mmap buffer (the driver re-queues
// and overwrites that buffer as soon as it is dequeued).
type Frame struct {
	Format Format
	Seq    uint64
	Time   time.Time // capture time, monotonic
	Data   []byte
	// Corrupt says the driver flagged the buffer as damaged
	// (V4L2_BUF_FLAG_ERROR: a USB transfer error, a torn frame). Source
	// drops it and counts it in BadFrames; Data may be empty.
	Corrupt bool
}

// FrameSource is the seam between the Source logic and the V4L2 device. The
// only implementation that touches a device is in device_linux.go (through
// the videodev ioctl layer); tests use v4l2test's replaying fake, because
// V4L2's ioctls cannot be faked at the file level, and the board tests run
// device_linux.go against the kernel's vivid driver.
//
// Concurrency: Formats and Configure are called before Run, from one
// goroutine. Run blocks until ctx ends (returning nil) or the device fails
// (returning an error that wraps the errno, e.g. ENODEV for an unplugged
// camera). Close releases the device, however far set-up got; it is called
// once, after Run has returned or when Run was never called.
type FrameSource interface {
	Formats() ([]Format, error)
	Configure(want Format) (got Format, err error)
	Run(ctx context.Context, out chan<- Frame) error
	Close() error
}

// KeyframeForcer is implemented by frame sources whose H.264 encoder accepts
// V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME. It may be called concurrently with Run.
type KeyframeForcer interface {
	ForceKeyframe() error
}

// Opener opens the device at path. Production uses OpenDevice; tests inject
// a fake.
type Opener func(path string) (FrameSource, error)
