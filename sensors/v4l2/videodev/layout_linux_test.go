//go:build linux

package videodev

import (
	"runtime"
	"testing"
	"unsafe"
)

// layout is what include/uapi/linux/videodev2.h gives on one architecture:
// struct sizes, the offsets that differ between 32 and 64 bits, and the
// VIDIOC_* numbers, each worked out by hand from _IOWR('V', nr, size) =
// 3<<30 | size<<16 | 'V'<<8 | nr (_IOR: 2<<30, _IOW: 1<<30).
type layout struct {
	sizes   map[string]uintptr
	offsets map[string]uintptr
	ioctls  map[string]uintptr
}

var (
	// layout64 is amd64 and arm64 (LP64): struct timeval is 16 bytes and
	// v4l2_format's union is 8-aligned (it holds struct v4l2_window's
	// pointers).
	layout64 = layout{
		sizes: map[string]uintptr{
			"v4l2_capability": 104, "v4l2_fmtdesc": 64, "v4l2_frmsizeenum": 44, "v4l2_pix_format": 48,
			"v4l2_format": 208, "v4l2_streamparm": 204, "v4l2_captureparm": 40, "v4l2_requestbuffers": 20,
			"v4l2_timecode": 16, "v4l2_buffer": 88, "v4l2_control": 8, "v4l2_queryctrl": 68,
		},
		offsets: map[string]uintptr{
			"v4l2_format.fmt": 8, "v4l2_buffer.timestamp": 24, "v4l2_buffer.timecode": 40,
			"v4l2_buffer.sequence": 56, "v4l2_buffer.m": 64, "v4l2_buffer.length": 72, "v4l2_buffer.request_fd": 80,
		},
		ioctls: map[string]uintptr{
			"VIDIOC_QUERYCAP": 0x80685600, "VIDIOC_ENUM_FMT": 0xc0405602, "VIDIOC_G_FMT": 0xc0d05604,
			"VIDIOC_S_FMT": 0xc0d05605, "VIDIOC_REQBUFS": 0xc0145608, "VIDIOC_QUERYBUF": 0xc0585609,
			"VIDIOC_QBUF": 0xc058560f, "VIDIOC_DQBUF": 0xc0585611, "VIDIOC_STREAMON": 0x40045612,
			"VIDIOC_STREAMOFF": 0x40045613, "VIDIOC_G_PARM": 0xc0cc5615, "VIDIOC_S_PARM": 0xc0cc5616,
			"VIDIOC_G_CTRL": 0xc008561b, "VIDIOC_S_CTRL": 0xc008561c, "VIDIOC_QUERYCTRL": 0xc0445624,
			"VIDIOC_ENUM_FRAMESIZES": 0xc02c564a,
		},
	}
	// layoutARM is 32-bit arm (EABI, ILP32) with the time32 struct timeval
	// (8 bytes): v4l2_format is 204 bytes, v4l2_buffer 68.
	layoutARM = layout{
		sizes: map[string]uintptr{
			"v4l2_capability": 104, "v4l2_fmtdesc": 64, "v4l2_frmsizeenum": 44, "v4l2_pix_format": 48,
			"v4l2_format": 204, "v4l2_streamparm": 204, "v4l2_captureparm": 40, "v4l2_requestbuffers": 20,
			"v4l2_timecode": 16, "v4l2_buffer": 68, "v4l2_control": 8, "v4l2_queryctrl": 68,
		},
		offsets: map[string]uintptr{
			"v4l2_format.fmt": 4, "v4l2_buffer.timestamp": 20, "v4l2_buffer.timecode": 28,
			"v4l2_buffer.sequence": 44, "v4l2_buffer.m": 52, "v4l2_buffer.length": 56, "v4l2_buffer.request_fd": 64,
		},
		ioctls: map[string]uintptr{
			"VIDIOC_QUERYCAP": 0x80685600, "VIDIOC_ENUM_FMT": 0xc0405602, "VIDIOC_G_FMT": 0xc0cc5604,
			"VIDIOC_S_FMT": 0xc0cc5605, "VIDIOC_REQBUFS": 0xc0145608, "VIDIOC_QUERYBUF": 0xc0445609,
			"VIDIOC_QBUF": 0xc044560f, "VIDIOC_DQBUF": 0xc0445611, "VIDIOC_STREAMON": 0x40045612,
			"VIDIOC_STREAMOFF": 0x40045613, "VIDIOC_G_PARM": 0xc0cc5615, "VIDIOC_S_PARM": 0xc0cc5616,
			"VIDIOC_G_CTRL": 0xc008561b, "VIDIOC_S_CTRL": 0xc008561c, "VIDIOC_QUERYCTRL": 0xc0445624,
			"VIDIOC_ENUM_FRAMESIZES": 0xc02c564a,
		},
	}
)

// TestLayout pins the Go structs and request numbers to the kernel header's
// values on the architecture the test runs on (the host, and arm64/arm under
// qemu-user in `make test`).
func TestLayout(t *testing.T) {
	var want layout
	switch runtime.GOARCH {
	case "amd64", "arm64":
		want = layout64
	case "arm":
		want = layoutARM
	default:
		t.Skipf("no pinned V4L2 layout for GOARCH=%s; add one before shipping there", runtime.GOARCH)
	}
	var buf v4l2Buffer
	var f v4l2Format
	got := layout{
		sizes: map[string]uintptr{
			"v4l2_capability":     unsafe.Sizeof(v4l2Capability{}),
			"v4l2_fmtdesc":        unsafe.Sizeof(v4l2Fmtdesc{}),
			"v4l2_frmsizeenum":    unsafe.Sizeof(v4l2Frmsizeenum{}),
			"v4l2_pix_format":     unsafe.Sizeof(v4l2PixFormat{}),
			"v4l2_format":         unsafe.Sizeof(v4l2Format{}),
			"v4l2_streamparm":     unsafe.Sizeof(v4l2Streamparm{}),
			"v4l2_captureparm":    unsafe.Sizeof(v4l2Captureparm{}),
			"v4l2_requestbuffers": unsafe.Sizeof(v4l2Requestbuffers{}),
			"v4l2_timecode":       unsafe.Sizeof(v4l2Timecode{}),
			"v4l2_buffer":         unsafe.Sizeof(v4l2Buffer{}),
			"v4l2_control":        unsafe.Sizeof(v4l2Control{}),
			"v4l2_queryctrl":      unsafe.Sizeof(v4l2Queryctrl{}),
		},
		offsets: map[string]uintptr{
			"v4l2_format.fmt":        unsafe.Offsetof(f.Union),
			"v4l2_buffer.timestamp":  unsafe.Offsetof(buf.Timestamp),
			"v4l2_buffer.timecode":   unsafe.Offsetof(buf.Timecode),
			"v4l2_buffer.sequence":   unsafe.Offsetof(buf.Sequence),
			"v4l2_buffer.m":          unsafe.Offsetof(buf.M),
			"v4l2_buffer.length":     unsafe.Offsetof(buf.Length),
			"v4l2_buffer.request_fd": unsafe.Offsetof(buf.RequestFD),
		},
		ioctls: map[string]uintptr{},
	}
	for req, name := range ioctlNames {
		got.ioctls[name] = req
	}
	check := func(what string, want, got map[string]uintptr, hex bool) {
		for k, w := range want {
			g, ok := got[k]
			switch {
			case !ok:
				t.Errorf("%s %s: not defined", what, k)
			case g != w && hex:
				t.Errorf("%s %s = %#x, want %#x", what, k, g, w)
			case g != w:
				t.Errorf("%s %s = %d, want %d", what, k, g, w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d defined, %d pinned; pin every one", what, len(got), len(want))
		}
	}
	check("sizeof", want.sizes, got.sizes, false)
	check("offsetof", want.offsets, got.offsets, false)
	check("ioctl", want.ioctls, got.ioctls, true)
	// The pix_format member sits at the start of the union.
	if off := uintptr(unsafe.Pointer(f.pix())) - uintptr(unsafe.Pointer(&f)); off != want.offsets["v4l2_format.fmt"] {
		t.Errorf("pix format at offset %d", off)
	}
}
