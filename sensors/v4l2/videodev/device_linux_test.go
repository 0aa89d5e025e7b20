//go:build linux

package videodev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// scriptedDriver plays a vb2 capture driver for Device: it grants buffers,
// hands out mmap offsets, queues, streams and dequeues, and fails the call
// a test names. It records the calls in order and the mappings still live,
// which is what decides whether the real queue would stay busy.
type scriptedDriver struct {
	nbufs  uint32
	failOn string // "REQBUFS", "QUERYBUF 2", "mmap 1", "QBUF 3", "STREAMON", "DQBUF"
	err    error  // what the failing call returns
	gone   bool   // unplugged: every ioctl fails with ENODEV

	granted   uint32
	live      map[*byte]int // mapping → buffer index
	calls     []string
	closes    int
	streaming bool
	ready     []v4l2Buffer // filled buffers DQBUF hands out
	// busyFree is set when REQBUFS 0 ran while mappings were live: a real
	// vb2 queue would then stay allocated.
	busyFree bool
}

func newScripted(nbufs uint32) *scriptedDriver {
	return &scriptedDriver{nbufs: nbufs, live: map[*byte]int{}}
}

func (s *scriptedDriver) fail(call string) error {
	s.calls = append(s.calls, call)
	if s.failOn == call {
		return s.err
	}
	return nil
}

func (s *scriptedDriver) ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if s.gone {
		s.calls = append(s.calls, ioctlNames[req]+" ENODEV")
		return unix.ENODEV
	}
	switch req {
	case vidiocReqbufs:
		r := (*v4l2Requestbuffers)(arg)
		if r.Count == 0 {
			s.calls = append(s.calls, "REQBUFS 0")
			if len(s.live) > 0 {
				s.busyFree = true
			}
			s.granted = 0
			return nil
		}
		if err := s.fail("REQBUFS"); err != nil {
			return err
		}
		r.Count, s.granted = s.nbufs, s.nbufs
	case vidiocQuerybuf:
		b := (*v4l2Buffer)(arg)
		if err := s.fail(fmt.Sprint("QUERYBUF ", b.Index)); err != nil {
			return err
		}
		if b.Index >= s.granted {
			return unix.EINVAL
		}
		b.Length, b.M = 4096, uintptr(b.Index)*4096
	case vidiocQbuf:
		b := (*v4l2Buffer)(arg)
		if err := s.fail(fmt.Sprint("QBUF ", b.Index)); err != nil {
			return err
		}
	case vidiocStreamon:
		if err := s.fail("STREAMON"); err != nil {
			return err
		}
		s.streaming = true
	case vidiocStreamoff:
		s.calls = append(s.calls, "STREAMOFF")
		s.streaming = false
	case vidiocDqbuf:
		if err := s.fail("DQBUF"); err != nil {
			return err
		}
		if len(s.ready) == 0 {
			return unix.EAGAIN
		}
		*(*v4l2Buffer)(arg), s.ready = s.ready[0], s.ready[1:]
	default:
		return unix.ENOTTY
	}
	return nil
}

func (s *scriptedDriver) mmap(fd int, offset int64, length int) ([]byte, error) {
	idx := int(offset / 4096)
	if err := s.fail(fmt.Sprint("mmap ", idx)); err != nil {
		return nil, err
	}
	b := make([]byte, length)
	s.live[&b[0]] = idx
	return b, nil
}

func (s *scriptedDriver) munmap(b []byte) error {
	idx, ok := s.live[&b[0]]
	if !ok {
		return unix.EINVAL
	}
	s.calls = append(s.calls, fmt.Sprint("munmap ", idx))
	delete(s.live, &b[0])
	return nil
}

func (s *scriptedDriver) close(fd int) error {
	s.calls = append(s.calls, "close")
	s.closes++
	return nil
}

// checkReleased fails unless every mapping is gone, the driver's buffers
// were freed after the last munmap, and STREAMOFF came before the munmaps.
func (s *scriptedDriver) checkReleased(t *testing.T) {
	t.Helper()
	if len(s.live) != 0 {
		t.Errorf("%d buffers still mapped; calls %v", len(s.live), s.calls)
	}
	if s.granted != 0 || s.busyFree {
		t.Errorf("driver buffers not freed after unmapping (granted %d, freed while mapped %v); calls %v", s.granted, s.busyFree, s.calls)
	}
	// Every munmap must follow a STREAMOFF issued after the last set-up call.
	stopped := true
	for _, c := range s.calls {
		switch {
		case c == "STREAMOFF":
			stopped = true
		case c == "REQBUFS" || c == "STREAMON" || strings.HasPrefix(c, "QBUF") || strings.HasPrefix(c, "mmap"):
			stopped = false
		case strings.HasPrefix(c, "munmap") && !stopped:
			t.Errorf("%s before STREAMOFF; calls %v", c, s.calls)
			return
		}
	}
}

func scriptedDevice(s *scriptedDriver) *Device { return &Device{path: "/dev/video-test", fd: 42, k: s} }

// TestStartStreamingFailureReleases is defect 1 of issue 12: whichever step
// of StartStreaming fails, nothing stays mapped or allocated, the errno is
// kept, and the same Device (and so the node) can stream right after.
func TestStartStreamingFailureReleases(t *testing.T) {
	tests := []struct {
		failOn string
		err    error
	}{
		{failOn: "REQBUFS", err: unix.EINVAL},
		{failOn: "QUERYBUF 0", err: unix.EINVAL},
		{failOn: "QUERYBUF 2", err: unix.ENOMEM},
		{failOn: "mmap 1", err: unix.ENOMEM},
		{failOn: "QBUF 3", err: unix.EINVAL},
		{failOn: "STREAMON", err: unix.ENOSPC}, // uvcvideo with too little USB bandwidth
		{failOn: "STREAMON", err: unix.ENODEV},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %v", tc.failOn, tc.err), func(t *testing.T) {
			s := newScripted(4)
			s.failOn, s.err = tc.failOn, tc.err
			d := scriptedDevice(s)
			err := d.StartStreaming(4)
			if !errors.Is(err, tc.err) {
				t.Fatalf("StartStreaming = %v, want an error wrapping %v", err, tc.err)
			}
			if d.Buffers() != 0 {
				t.Errorf("Buffers = %d after failure", d.Buffers())
			}
			s.checkReleased(t)

			// The node is free again: the next attempt streams.
			s.failOn = ""
			if err := d.StartStreaming(4); err != nil {
				t.Fatalf("StartStreaming after release: %v", err)
			}
			if !s.streaming || d.Buffers() != 4 || len(s.live) != 4 {
				t.Fatalf("not streaming: streaming=%v buffers=%d mapped=%d", s.streaming, d.Buffers(), len(s.live))
			}
			if err := d.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s.checkReleased(t)
		})
	}
}

func TestCloseReleasesEverythingOnce(t *testing.T) {
	s := newScripted(3)
	d := scriptedDevice(s)
	if err := d.StartStreaming(3); err != nil {
		t.Fatal(err)
	}
	if err := d.StartStreaming(3); err == nil {
		t.Error("second StartStreaming succeeded")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s.checkReleased(t)
	if s.calls[len(s.calls)-1] != "close" || s.closes != 1 {
		t.Errorf("close not last or not once: %v", s.calls)
	}
	if err := d.Close(); err != nil || s.closes != 1 {
		t.Errorf("second Close = %v, closes %d", err, s.closes)
	}
	if _, err := d.QueryCap(); !errors.Is(err, unix.EBADF) {
		t.Errorf("QueryCap after Close = %v, want EBADF", err)
	}
}

// TestCloseAfterUnplug: once the device is gone every ioctl fails with
// ENODEV; Close still unmaps and closes, and does not report the ENODEVs.
func TestCloseAfterUnplug(t *testing.T) {
	s := newScripted(2)
	d := scriptedDevice(s)
	if err := d.StartStreaming(2); err != nil {
		t.Fatal(err)
	}
	s.gone = true
	if _, err := d.Dequeue(); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("Dequeue = %v, want ENODEV", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close after unplug: %v", err)
	}
	if len(s.live) != 0 || s.closes != 1 {
		t.Fatalf("mapped %d closes %d; calls %v", len(s.live), s.closes, s.calls)
	}
}

func TestDequeue(t *testing.T) {
	s := newScripted(2)
	d := scriptedDevice(s)
	if err := d.StartStreaming(2); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Dequeue(); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Dequeue with nothing ready = %v, want EAGAIN", err)
	}
	copy(d.bufs[1], "frame")
	s.ready = []v4l2Buffer{
		{Index: 1, BytesUsed: 5, Flags: BufFlagDone, Sequence: 7, Timestamp: unix.Timeval{Sec: 3, Usec: 500}},
		{Index: 0, BytesUsed: 0, Flags: BufFlagError, Sequence: 8},
		{Index: 1, BytesUsed: 1 << 20}, // longer than the buffer: clamped
		{Index: 9},
	}
	b, err := d.Dequeue()
	if err != nil || b.Index != 1 || string(b.Data) != "frame" || b.Sequence != 7 || b.Timestamp.Microseconds() != 3000500 {
		t.Fatalf("Dequeue = %+v, %v", b, err)
	}
	if b, err = d.Dequeue(); err != nil || b.Flags&BufFlagError == 0 || len(b.Data) != 0 {
		t.Fatalf("error-flagged buffer = %+v, %v", b, err)
	}
	if b, err = d.Dequeue(); err != nil || len(b.Data) != 4096 {
		t.Fatalf("oversized bytesused: %d bytes, %v", len(b.Data), err)
	}
	if _, err = d.Dequeue(); err == nil {
		t.Fatal("buffer index out of range accepted")
	}
}

// TestNotAV4L2Node runs the real ioctls against a regular file: the errno
// (ENOTTY) comes through wrapped, and Close is clean.
func TestNotAV4L2Node(t *testing.T) {
	p := filepath.Join(t.TempDir(), "video0")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	want := unix.ENOTTY
	if os.Getenv("EDGE_AGENT_EMULATED") != "" {
		want = unix.ENOSYS // qemu-user answers ioctls it does not translate with ENOSYS
	}
	if _, err := d.QueryCap(); !errors.Is(err, want) || !strings.Contains(err.Error(), "VIDIOC_QUERYCAP") {
		t.Errorf("QueryCap = %v, want VIDIOC_QUERYCAP: %v", err, want)
	}
	if err := d.StartStreaming(4); !errors.Is(err, want) {
		t.Errorf("StartStreaming = %v, want %v", err, want)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d.Fd() != -1 {
		t.Errorf("Fd after Close = %d", d.Fd())
	}
	if _, err := Open(filepath.Join(t.TempDir(), "absent")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Open of a missing node = %v, want ENOENT", err)
	}
}

func TestCapability(t *testing.T) {
	tests := []struct {
		name    string
		c       Capability
		capture bool
		kind    string
	}{
		{name: "uvc capture", c: Capability{Capabilities: CapDeviceCaps | CapVideoCapture | CapMetaCapture | CapStreaming,
			DeviceCaps: CapVideoCapture | CapStreaming}, capture: true, kind: "video capture"},
		{name: "uvc metadata node", c: Capability{Capabilities: CapDeviceCaps | CapVideoCapture | CapMetaCapture | CapStreaming,
			DeviceCaps: CapMetaCapture | CapStreaming}, kind: "metadata capture"},
		{name: "output", c: Capability{Capabilities: CapDeviceCaps | CapVideoCapture | CapVideoOutput,
			DeviceCaps: CapVideoOutput | CapStreaming}, kind: "video output"},
		{name: "m2m encoder", c: Capability{Capabilities: CapDeviceCaps | CapVideoM2MMplane,
			DeviceCaps: CapVideoM2MMplane | CapStreaming}, kind: "memory-to-memory"},
		{name: "m2m with both bits", c: Capability{Capabilities: CapDeviceCaps | CapVideoM2M,
			DeviceCaps: CapVideoM2M | CapVideoCapture | CapVideoOutput | CapStreaming}, kind: "memory-to-memory, video capture, video output"},
		{name: "multi-planar only", c: Capability{Capabilities: CapDeviceCaps | CapVideoCaptureMplane,
			DeviceCaps: CapVideoCaptureMplane | CapStreaming}, kind: "multi-planar video capture"},
		{name: "touch", c: Capability{Capabilities: CapDeviceCaps | CapVideoCapture | CapTouch,
			DeviceCaps: CapVideoCapture | CapTouch | CapStreaming}, kind: "touch, video capture"},
		{name: "read() only", c: Capability{Capabilities: CapDeviceCaps, DeviceCaps: CapVideoCapture | CapReadWrite}, kind: "video capture"},
		{name: "pre-3.3 driver without device_caps", c: Capability{Capabilities: CapVideoCapture | CapStreaming},
			capture: true, kind: "video capture"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.IsVideoCapture(); got != tc.capture {
				t.Errorf("IsVideoCapture = %v", got)
			}
			if got := tc.c.Kind(); got != tc.kind {
				t.Errorf("Kind = %q, want %q", got, tc.kind)
			}
		})
	}
}

func TestIntervalFor(t *testing.T) {
	for fps, want := range map[float64]Fract{15: {1, 15}, 7.5: {2, 15}, 30: {1, 30}, 0.5: {2, 1}, 29.97: {100, 2997}, 0: {}} {
		if got := IntervalFor(fps); got != want {
			t.Errorf("IntervalFor(%g) = %v, want %v", fps, got, want)
		}
		if want.Denominator != 0 && IntervalFor(fps).FPS() != fps {
			t.Errorf("IntervalFor(%g).FPS() = %g", fps, IntervalFor(fps).FPS())
		}
	}
}

func TestFrameSizeString(t *testing.T) {
	if s := (FrameSize{Type: FrameSizeDiscrete, MinWidth: 640, MaxWidth: 640, MinHeight: 480, MaxHeight: 480}).String(); s != "640x480" {
		t.Errorf("discrete: %q", s)
	}
	if s := (FrameSize{Type: FrameSizeStepwise, MinWidth: 16, MaxWidth: 4096, StepWidth: 2, MinHeight: 16, MaxHeight: 2160, StepHeight: 2}).String(); s != "[16-4096;2]x[16-2160;2]" {
		t.Errorf("stepwise: %q", s)
	}
}
