// Package v4l2test provides a fake v4l2.FrameSource that replays recorded
// frames, and helpers to find the test media. The fake stands in for
// the camera because V4L2's ioctls cannot be faked at the file level.
package v4l2test

import (
	"bytes"
	"context"
	"errors"
	"image/color"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors/v4l2"
	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
)

// ErrDeviceGone is what a Fake returns from Run after FailAfter frames,
// standing in for ENODEV when a USB camera is unplugged.
var ErrDeviceGone = errors.New("no such device (fake unplug)")

// Fake replays Frames for the configured pixel format, looping, one every
// Interval. It records opens and closes so tests can check the device is
// released, and never allows two opens at once.
//
// Concurrency: configure the exported fields before use; the methods are
// safe for concurrent use.
type Fake struct {
	Offered  []v4l2.Format
	Frames   map[v4l2.FourCC][][]byte
	Interval time.Duration // default 1ms
	// FailAfter makes Run return ErrDeviceGone after that many frames of
	// each open (0: never). FailOpens makes the next n opens fail, with
	// OpenErr when set (a test wraps v4l2.ErrNotCapture in it, say).
	FailAfter int
	FailOpens int
	OpenErr   error
	// CorruptEvery flags every n-th frame of each open (the n-th, 2n-th, ...)
	// as Corrupt, as a driver does with V4L2_BUF_FLAG_ERROR (0: none).
	CorruptEvery int
	// NoLoop stops Run's output after one pass (Run then waits for ctx).
	NoLoop bool

	mu         sync.Mutex
	open       bool
	opens      int
	closes     int
	doubleOpen bool
	configured v4l2.Format
	keyframes  int
	sent       int
}

// Opener returns the v4l2.Opener that hands out this fake.
func (f *Fake) Opener() v4l2.Opener {
	return func(path string) (v4l2.FrameSource, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.FailOpens > 0 {
			f.FailOpens--
			if f.OpenErr != nil {
				return nil, f.OpenErr
			}
			return nil, errors.New("fake: open failed")
		}
		if f.open {
			f.doubleOpen = true
			return nil, errors.New("fake: device busy")
		}
		f.open = true
		f.opens++
		f.sent = 0
		return &handle{f: f}, nil
	}
}

// Opens, Closes: how many times the device was opened and released.
func (f *Fake) Opens() int  { f.mu.Lock(); defer f.mu.Unlock(); return f.opens }
func (f *Fake) Closes() int { f.mu.Lock(); defer f.mu.Unlock(); return f.closes }

// IsOpen reports whether the device is held right now.
func (f *Fake) IsOpen() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.open }

// DoubleOpen reports whether anyone tried to open the device while it was open.
func (f *Fake) DoubleOpen() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.doubleOpen }

// Configured is the format the source asked for last.
func (f *Fake) Configured() v4l2.Format { f.mu.Lock(); defer f.mu.Unlock(); return f.configured }

// Keyframes counts ForceKeyframe calls.
func (f *Fake) Keyframes() int { f.mu.Lock(); defer f.mu.Unlock(); return f.keyframes }

// handle is one open of the fake device.
type handle struct {
	f      *Fake
	closed bool
}

func (h *handle) Formats() ([]v4l2.Format, error) {
	return append([]v4l2.Format(nil), h.f.Offered...), nil
}

// Configure accepts any offered pixel format; like a driver, it snaps the
// size to the nearest offered one of that format.
func (h *handle) Configure(want v4l2.Format) (v4l2.Format, error) {
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	got, ok := v4l2.Format{}, false
	for _, o := range f.Offered {
		if o.FourCC != want.FourCC {
			continue
		}
		if !ok || abs(o.Width*o.Height-want.Width*want.Height) < abs(got.Width*got.Height-want.Width*want.Height) {
			got, ok = o, true
		}
	}
	if !ok {
		return v4l2.Format{}, errors.New("fake: format not offered")
	}
	got.FPS = want.FPS
	f.configured = got
	return got, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func (h *handle) Run(ctx context.Context, out chan<- v4l2.Frame) error {
	f := h.f
	f.mu.Lock()
	format, frames, interval := f.configured, f.Frames[f.configured.FourCC], f.Interval
	f.mu.Unlock()
	if interval == 0 {
		interval = time.Millisecond
	}
	if len(frames) == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; ; i++ {
		if f.NoLoop && i >= len(frames) {
			<-ctx.Done()
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f.mu.Lock()
		fail := f.FailAfter > 0 && f.sent >= f.FailAfter
		if !fail {
			f.sent++
		}
		corrupt := f.CorruptEvery > 0 && f.sent%f.CorruptEvery == 0
		f.mu.Unlock()
		if fail {
			return ErrDeviceGone
		}
		fr := v4l2.Frame{Format: format, Seq: uint64(i), Time: time.Now(), Data: bytes.Clone(frames[i%len(frames)]), Corrupt: corrupt}
		select {
		case out <- fr:
		case <-ctx.Done():
			return nil
		}
	}
}

func (h *handle) ForceKeyframe() error {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	h.f.keyframes++
	return nil
}

func (h *handle) Close() error {
	f := h.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.closed {
		return errors.New("fake: closed twice")
	}
	h.closed = true
	f.open = false
	f.closes++
	return nil
}

// TestdataDir returns the test media folder (testdata/media at the
// repository root, found by walking up to go.mod from the working
// directory; testdata/media/README.md says how each file was made).
func TestdataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			td := filepath.Join(dir, "testdata", "media")
			if _, err := os.Stat(td); err != nil {
				t.Fatalf("test media: %v", err)
			}
			return td
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root (go.mod) not found above the working directory; skipping media test")
		}
		dir = parent
	}
}

// MJPEGFrames splits testsrc-640x480-10frames.mjpeg into its JPEG frames.
func MJPEGFrames(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(TestdataDir(t), "testsrc-640x480-10frames.mjpeg"))
	if err != nil {
		t.Fatal(err)
	}
	sp := mjpeg.NewSplitter(bytes.NewReader(b))
	var out [][]byte
	for {
		fr, err := sp.Next()
		if err != nil {
			break
		}
		out = append(out, fr)
	}
	if len(out) == 0 {
		t.Fatal("no frames in the MJPEG test file")
	}
	return out
}

// H264 reads the testsrc-320x240-15fps-4s.h264 stream.
func H264(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(TestdataDir(t), "testsrc-320x240-15fps-4s.h264"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// YUYVFrame returns a w×h packed YUYV frame of a horizontal luma ramp with
// constant chroma, so a decoded JPEG can be checked against it.
func YUYVFrame(w, h int) []byte {
	b := make([]byte, w*h*2)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x += 2 {
			i := (y*w + x) * 2
			b[i] = byte(x * 255 / w)
			b[i+1] = 100
			b[i+2] = byte((x + 1) * 255 / w)
			b[i+3] = 150
		}
	}
	return b
}

// YUYVExpected is the colour YUYVFrame has at column x.
func YUYVExpected(w, x int) color.YCbCr {
	return color.YCbCr{Y: byte(x * 255 / w), Cb: 100, Cr: 150}
}
