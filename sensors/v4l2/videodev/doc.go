// Package videodev is a small, exact V4L2 ioctl layer for single-planar
// video capture with mmap buffers: the part of videodev2.h the camera driver
// needs, in pure Go (golang.org/x/sys/unix, no cgo), for linux/amd64, arm64
// and 32-bit arm.
//
// It exists instead of a general webcam library so that the failure paths
// are ours to get right: every path that fails after buffers were mapped
// unmaps them and frees them in the driver (VIDIOC_REQBUFS with count 0), and
// Close releases everything however far set-up got, so the next open of the
// node does not find the queue busy. Errors keep the kernel's errno (wrapped
// with %w), so callers can tell ENODEV (unplugged) from EBUSY or ENOSPC.
//
// Struct layouts and ioctl numbers follow include/uapi/linux/videodev2.h;
// layout_linux_test.go pins them against the header's values for each
// architecture. On 32-bit arm struct v4l2_buffer uses the 32-bit struct
// timeval (Go's unix.Timeval there), the layout the kernel still accepts
// under the classic ioctl numbers.
//
// Only Linux has an implementation; on other systems the package is empty.
package videodev
