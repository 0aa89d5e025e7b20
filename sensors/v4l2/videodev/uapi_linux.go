//go:build linux

package videodev

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device capabilities (struct v4l2_capability's capabilities and
// device_caps; V4L2_CAP_*).
const (
	CapVideoCapture       uint32 = 0x00000001
	CapVideoOutput        uint32 = 0x00000002
	CapVBICapture         uint32 = 0x00000010
	CapVideoCaptureMplane uint32 = 0x00001000
	CapVideoOutputMplane  uint32 = 0x00002000
	CapVideoM2MMplane     uint32 = 0x00004000
	CapVideoM2M           uint32 = 0x00008000
	CapSDRCapture         uint32 = 0x00100000
	CapMetaCapture        uint32 = 0x00800000
	CapReadWrite          uint32 = 0x01000000
	CapStreaming          uint32 = 0x04000000
	CapMetaOutput         uint32 = 0x08000000
	CapTouch              uint32 = 0x10000000
	CapDeviceCaps         uint32 = 0x80000000
)

// Buffer flags (struct v4l2_buffer's flags; V4L2_BUF_FLAG_*).
const (
	BufFlagMapped   uint32 = 0x00000001
	BufFlagQueued   uint32 = 0x00000002
	BufFlagDone     uint32 = 0x00000004
	BufFlagKeyframe uint32 = 0x00000008
	BufFlagError    uint32 = 0x00000040
	BufFlagLast     uint32 = 0x00100000
)

// Frame size types (struct v4l2_frmsizeenum's type; V4L2_FRMSIZE_TYPE_*).
const (
	FrameSizeDiscrete   uint32 = 1
	FrameSizeContinuous uint32 = 2
	FrameSizeStepwise   uint32 = 3
)

// Control types and flags (struct v4l2_queryctrl; V4L2_CTRL_TYPE_*,
// V4L2_CTRL_FLAG_*).
const (
	CtrlTypeInteger   uint32 = 1
	CtrlTypeBoolean   uint32 = 2
	CtrlTypeMenu      uint32 = 3
	CtrlTypeButton    uint32 = 4
	CtrlTypeCtrlClass uint32 = 6

	CtrlFlagDisabled uint32 = 0x0001
	ctrlFlagNextCtrl uint32 = 0x80000000
)

// CIDForceKeyFrame is V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME
// (V4L2_CID_CODEC_BASE 0x00990900 + 229), a button control of H.264
// encoders.
const CIDForceKeyFrame uint32 = 0x009909e5

const (
	bufTypeVideoCapture uint32 = 1      // V4L2_BUF_TYPE_VIDEO_CAPTURE
	memoryMmap          uint32 = 1      // V4L2_MEMORY_MMAP
	fieldAny            uint32 = 0      // V4L2_FIELD_ANY
	capTimePerFrame     uint32 = 0x1000 // V4L2_CAP_TIMEPERFRAME (struct v4l2_captureparm)
)

// The structs below mirror videodev2.h field by field. Unions are byte or
// word arrays sized and aligned like the C union; the union members used are
// read through unsafe casts of the array's address.

// v4l2Capability is struct v4l2_capability (104 bytes).
type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

// v4l2Fmtdesc is struct v4l2_fmtdesc (64 bytes).
type v4l2Fmtdesc struct {
	Index       uint32
	Type        uint32
	Flags       uint32
	Description [32]byte
	PixelFormat uint32
	MbusCode    uint32
	Reserved    [3]uint32
}

// v4l2Frmsizeenum is struct v4l2_frmsizeenum (44 bytes). Union: for
// DISCRETE {width, height}; for STEPWISE and CONTINUOUS {min_width,
// max_width, step_width, min_height, max_height, step_height}.
type v4l2Frmsizeenum struct {
	Index       uint32
	PixelFormat uint32
	Type        uint32
	Union       [6]uint32
	Reserved    [2]uint32
}

// v4l2PixFormat is struct v4l2_pix_format (48 bytes), the single-planar
// member of v4l2_format's union.
type v4l2PixFormat struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	BytesPerLine uint32
	SizeImage    uint32
	Colorspace   uint32
	Priv         uint32
	Flags        uint32
	YcbcrEnc     uint32
	Quantization uint32
	XferFunc     uint32
}

// v4l2Format is struct v4l2_format: a u32 type and a 200-byte union that
// holds pointers (struct v4l2_window), so the union is pointer-aligned:
// 208 bytes on 64-bit, 204 on 32-bit arm. An array of uintptr gives Go the
// same size and alignment on every architecture.
type v4l2Format struct {
	Type  uint32
	Union [200 / unsafe.Sizeof(uintptr(0))]uintptr
}

func (f *v4l2Format) pix() *v4l2PixFormat { return (*v4l2PixFormat)(unsafe.Pointer(&f.Union)) }

// v4l2Fract is struct v4l2_fract.
type v4l2Fract struct {
	Numerator   uint32
	Denominator uint32
}

// v4l2Captureparm is struct v4l2_captureparm (40 bytes), the capture member
// of v4l2_streamparm's union.
type v4l2Captureparm struct {
	Capability   uint32
	CaptureMode  uint32
	TimePerFrame v4l2Fract
	ExtendedMode uint32
	ReadBuffers  uint32
	Reserved     [4]uint32
}

// v4l2Streamparm is struct v4l2_streamparm (204 bytes; its union holds only
// u32 fields and raw_data[200]).
type v4l2Streamparm struct {
	Type  uint32
	Union [200 / 4]uint32
}

func (p *v4l2Streamparm) capture() *v4l2Captureparm {
	return (*v4l2Captureparm)(unsafe.Pointer(&p.Union))
}

// v4l2Requestbuffers is struct v4l2_requestbuffers (20 bytes).
type v4l2Requestbuffers struct {
	Count        uint32
	Type         uint32
	Memory       uint32
	Capabilities uint32
	Flags        uint8
	Reserved     [3]uint8
}

// v4l2Timecode is struct v4l2_timecode (16 bytes).
type v4l2Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	Userbits [4]uint8
}

// v4l2Buffer is struct v4l2_buffer as user space declares it: struct
// timeval is 16 bytes on 64-bit and, with Go's unix.Timeval, 8 bytes on
// 32-bit arm (the time32 layout). The m union (offset, userptr, planes, fd)
// is unsigned-long sized: uintptr; the MMAP offset is its low 32 bits (all
// supported architectures are little-endian). 88 bytes on 64-bit, 68 on arm.
type v4l2Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	Timestamp unix.Timeval
	Timecode  v4l2Timecode
	Sequence  uint32
	Memory    uint32
	M         uintptr
	Length    uint32
	Reserved2 uint32
	RequestFD int32
}

// v4l2Control is struct v4l2_control (8 bytes).
type v4l2Control struct {
	ID    uint32
	Value int32
}

// v4l2Queryctrl is struct v4l2_queryctrl (68 bytes).
type v4l2Queryctrl struct {
	ID           uint32
	Type         uint32
	Name         [32]byte
	Minimum      int32
	Maximum      int32
	Step         int32
	DefaultValue int32
	Flags        uint32
	Reserved     [2]uint32
}

// ioctl request encoding of asm-generic/ioctl.h (arm, arm64 and x86 use it):
// nr in bits 0-7, type in 8-15, size in 16-29, direction in 30-31.
const (
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'V'<<8 | nr }
func ior(nr, size uintptr) uintptr      { return ioc(iocRead, nr, size) }
func iow(nr, size uintptr) uintptr      { return ioc(iocWrite, nr, size) }
func iowr(nr, size uintptr) uintptr     { return ioc(iocRead|iocWrite, nr, size) }

// The VIDIOC_* requests this package issues.
var (
	vidiocQuerycap       = ior(0, unsafe.Sizeof(v4l2Capability{}))
	vidiocEnumFmt        = iowr(2, unsafe.Sizeof(v4l2Fmtdesc{}))
	vidiocGFmt           = iowr(4, unsafe.Sizeof(v4l2Format{}))
	vidiocSFmt           = iowr(5, unsafe.Sizeof(v4l2Format{}))
	vidiocReqbufs        = iowr(8, unsafe.Sizeof(v4l2Requestbuffers{}))
	vidiocQuerybuf       = iowr(9, unsafe.Sizeof(v4l2Buffer{}))
	vidiocQbuf           = iowr(15, unsafe.Sizeof(v4l2Buffer{}))
	vidiocDqbuf          = iowr(17, unsafe.Sizeof(v4l2Buffer{}))
	vidiocStreamon       = iow(18, unsafe.Sizeof(int32(0)))
	vidiocStreamoff      = iow(19, unsafe.Sizeof(int32(0)))
	vidiocGParm          = iowr(21, unsafe.Sizeof(v4l2Streamparm{}))
	vidiocSParm          = iowr(22, unsafe.Sizeof(v4l2Streamparm{}))
	vidiocGCtrl          = iowr(27, unsafe.Sizeof(v4l2Control{}))
	vidiocSCtrl          = iowr(28, unsafe.Sizeof(v4l2Control{}))
	vidiocQueryctrl      = iowr(36, unsafe.Sizeof(v4l2Queryctrl{}))
	vidiocEnumFramesizes = iowr(74, unsafe.Sizeof(v4l2Frmsizeenum{}))
)

// ioctlNames names requests in errors ("VIDIOC_STREAMON: no space left on
// device").
var ioctlNames = map[uintptr]string{
	vidiocQuerycap: "VIDIOC_QUERYCAP", vidiocEnumFmt: "VIDIOC_ENUM_FMT", vidiocGFmt: "VIDIOC_G_FMT",
	vidiocSFmt: "VIDIOC_S_FMT", vidiocReqbufs: "VIDIOC_REQBUFS", vidiocQuerybuf: "VIDIOC_QUERYBUF",
	vidiocQbuf: "VIDIOC_QBUF", vidiocDqbuf: "VIDIOC_DQBUF", vidiocStreamon: "VIDIOC_STREAMON",
	vidiocStreamoff: "VIDIOC_STREAMOFF", vidiocGParm: "VIDIOC_G_PARM", vidiocSParm: "VIDIOC_S_PARM",
	vidiocGCtrl: "VIDIOC_G_CTRL", vidiocSCtrl: "VIDIOC_S_CTRL", vidiocQueryctrl: "VIDIOC_QUERYCTRL",
	vidiocEnumFramesizes: "VIDIOC_ENUM_FRAMESIZES",
}

// cString returns the NUL-terminated string in b.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
