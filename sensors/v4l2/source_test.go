package v4l2_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/h264"
	"github.com/edge-agent/edge-agent/sensors/v4l2"
	"github.com/edge-agent/edge-agent/sensors/v4l2/v4l2test"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var camFormats = []v4l2.Format{
	{FourCC: v4l2.FourCCMJPEG, Width: 640, Height: 480},
	{FourCC: v4l2.FourCCYUYV, Width: 320, Height: 240},
	{FourCC: v4l2.FourCCYUYV, Width: 640, Height: 480},
	{FourCC: v4l2.FourCCH264, Width: 320, Height: 240},
}

func newSource(fake *v4l2test.Fake, format string) *v4l2.Source {
	cfg := v4l2.Config{Device: "/dev/video0", Format: format, FPS: 15}
	if format == "yuyv" || format == "h264" {
		cfg.Width, cfg.Height = 320, 240
	}
	return v4l2.NewSource("cam", cfg, sensors.Env{}, v4l2.WithOpener(fake.Opener()))
}

// collect runs src until n samples arrived or Run returned, then stops it.
func collect(t *testing.T, src sensors.Source, n int) ([]sensors.Sample, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make(chan sensors.Sample)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	var got []sensors.Sample
	for len(got) < n {
		select {
		case s := <-out:
			got = append(got, s)
		case err := <-errc:
			return got, err
		}
	}
	cancel()
	return got, <-errc
}

func TestMJPEGPassthrough(t *testing.T) {
	frames := v4l2test.MJPEGFrames(t)
	fake := &v4l2test.Fake{Offered: camFormats, Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCMJPEG: frames}}
	src := newSource(fake, "auto")
	got, err := collect(t, src, len(frames))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, s := range got {
		if s.Class != sensors.Still || s.Seq != uint64(i) {
			t.Fatalf("sample %d: class %v seq %d", i, s.Class, s.Seq)
		}
		if !bytes.Equal(s.Data, frames[i]) {
			t.Fatalf("sample %d was altered (%d vs %d bytes); MJPEG must pass through", i, len(s.Data), len(frames[i]))
		}
	}
	info := src.Info()
	if info.Width != 640 || info.Height != 480 || info.Class != sensors.Still || info.Rate != 15 {
		t.Errorf("info after open = %+v", info)
	}
	if fake.IsOpen() || fake.Closes() != 1 {
		t.Errorf("device not released after Run: open=%v closes=%d", fake.IsOpen(), fake.Closes())
	}
}

func TestYUYVToJPEG(t *testing.T) {
	const w, h = 320, 240
	fake := &v4l2test.Fake{Offered: camFormats, Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCYUYV: {v4l2test.YUYVFrame(w, h)}}}
	got, err := collect(t, newSource(fake, "yuyv"), 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got {
		img, err := jpeg.Decode(bytes.NewReader(s.Data))
		if err != nil {
			t.Fatalf("not a JPEG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
			t.Fatalf("size %v", b)
		}
		for _, x := range []int{8, 100, 200, 300} {
			want := v4l2test.YUYVExpected(w, x)
			r, g, b, _ := img.At(x, h/2).RGBA()
			wr, wg, wb, _ := want.RGBA()
			if d := diff(r, wr) + diff(g, wg) + diff(b, wb); d > 3*8*257 {
				t.Errorf("pixel %d: got %d,%d,%d want %d,%d,%d", x, r>>8, g>>8, b>>8, wr>>8, wg>>8, wb>>8)
			}
		}
	}
}

func diff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// stripParamSets removes SPS/PPS from every access unit after the first, as
// an encoder that sends parameter sets only once does.
func stripParamSets(aus []h264.AccessUnit) [][]byte {
	out := make([][]byte, len(aus))
	for i, au := range aus {
		if i == 0 {
			out[i] = au.Data
			continue
		}
		var b []byte
		for _, n := range h264.SplitNALs(au.Data) {
			if t := h264.NALType(n); t == h264.NALSPS || t == h264.NALPPS {
				continue
			}
			b = append(append(b, 0, 0, 0, 1), n...)
		}
		out[i] = b
	}
	return out
}

func TestH264AccessUnits(t *testing.T) {
	aus, err := h264.SplitAll(v4l2test.H264(t))
	if err != nil {
		t.Fatal(err)
	}
	fake := &v4l2test.Fake{Offered: camFormats, Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCH264: stripParamSets(aus)}}
	src := newSource(fake, "h264")
	if src.Info().Class != sensors.Video {
		t.Fatalf("class before open = %v", src.Info().Class)
	}
	if err := src.RequestKeyframe(); !errors.Is(err, sensors.ErrNoKeyframeControl) {
		t.Errorf("RequestKeyframe while closed = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan sensors.Sample)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	keys := 0
	for i := range aus {
		s := <-out
		if i == 1 {
			if err := src.RequestKeyframe(); err != nil {
				t.Errorf("RequestKeyframe while streaming: %v", err)
			}
		}
		if s.Keyframe != aus[i].Keyframe {
			t.Fatalf("AU %d: keyframe %v, want %v", i, s.Keyframe, aus[i].Keyframe)
		}
		if s.Keyframe {
			keys++
			nals := h264.SplitNALs(s.Data)
			if len(nals) < 3 || h264.NALType(nals[0]) != h264.NALSPS || h264.NALType(nals[1]) != h264.NALPPS {
				t.Fatalf("keyframe %d does not start with SPS, PPS", i)
			}
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if keys < 2 {
		t.Errorf("only %d keyframes; the media should have several", keys)
	}
	if fake.Keyframes() != 1 {
		t.Errorf("device saw %d force-keyframe requests, want 1", fake.Keyframes())
	}
}

func TestBadFramesAreDropped(t *testing.T) {
	frames := v4l2test.MJPEGFrames(t)
	good := frames[0]
	bad := [][]byte{[]byte("garbage"), good[:len(good)/2], {}}
	replay := [][]byte{good, bad[0], good, bad[1], bad[2], good}
	fake := &v4l2test.Fake{Offered: camFormats, Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCMJPEG: replay}}
	src := newSource(fake, "mjpeg")
	got, err := collect(t, src, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		if !bytes.Equal(s.Data, good) || s.Seq != uint64(i) {
			t.Fatalf("sample %d is not the good frame (seq %d)", i, s.Seq)
		}
	}
	if n := src.BadFrames(); n < 3 {
		t.Errorf("BadFrames = %d, want >= 3", n)
	}
}

// TestCorruptFramesAreDropped: buffers the driver flags with
// V4L2_BUF_FLAG_ERROR never reach subscribers, even when their bytes look
// like a JPEG, and are counted.
func TestCorruptFramesAreDropped(t *testing.T) {
	frames := v4l2test.MJPEGFrames(t)
	fake := &v4l2test.Fake{Offered: camFormats, CorruptEvery: 2, Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCMJPEG: frames}}
	src := newSource(fake, "mjpeg")
	got, err := collect(t, src, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Frames 1, 3, ... (the 2nd, 4th, ... sent) are flagged.
	for i, s := range got {
		if !bytes.Equal(s.Data, frames[2*i]) {
			t.Fatalf("sample %d is not frame %d: a corrupt frame was passed on", i, 2*i)
		}
	}
	if n := src.BadFrames(); n < 2 {
		t.Errorf("BadFrames = %d, want >= 2", n)
	}
}

func TestRunErrors(t *testing.T) {
	frames := v4l2test.MJPEGFrames(t)
	tests := []struct {
		name      string
		fake      *v4l2test.Fake
		cfg       v4l2.Config
		wantErr   error
		permanent bool // a configuration mismatch: the hub must not retry
	}{
		{name: "open fails", fake: &v4l2test.Fake{Offered: camFormats, FailOpens: 1},
			cfg: v4l2.Config{Format: "auto"}},
		{name: "open gets EBUSY", fake: &v4l2test.Fake{Offered: camFormats, FailOpens: 1, OpenErr: fmt.Errorf("open: %w", syscall.EBUSY)},
			cfg: v4l2.Config{Format: "auto"}, wantErr: syscall.EBUSY},
		{name: "not a capture node", fake: &v4l2test.Fake{Offered: camFormats, FailOpens: 1,
			OpenErr: fmt.Errorf("/dev/video1 is a metadata capture node: %w", v4l2.ErrNotCapture)},
			cfg: v4l2.Config{Format: "auto"}, wantErr: v4l2.ErrNotCapture, permanent: true},
		{name: "format not offered", fake: &v4l2test.Fake{Offered: camFormats[:1]},
			cfg: v4l2.Config{Format: "h264"}, wantErr: v4l2.ErrNoFormat, permanent: true},
		{name: "no mjpeg offered", fake: &v4l2test.Fake{Offered: camFormats[1:3]},
			cfg: v4l2.Config{Format: "mjpeg"}, wantErr: v4l2.ErrNoFormat, permanent: true},
		{name: "size beyond the camera", fake: &v4l2test.Fake{Offered: camFormats},
			cfg: v4l2.Config{Format: "yuyv", Width: 1920, Height: 1080}, wantErr: v4l2.ErrNoSize, permanent: true},
		{name: "device unplugged", fake: &v4l2test.Fake{Offered: camFormats, FailAfter: 2,
			Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCMJPEG: frames}}, cfg: v4l2.Config{Format: "mjpeg"}, wantErr: v4l2test.ErrDeviceGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Device, cfg.FPS = "/dev/video0", 15
			src := v4l2.NewSource("cam", cfg, sensors.Env{}, v4l2.WithOpener(tc.fake.Opener()))
			_, err := collect(t, src, 1000)
			if err == nil {
				t.Fatal("Run returned nil")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got := retry.IsPermanent(err); got != tc.permanent {
				t.Errorf("permanent = %v, want %v (err %v)", got, tc.permanent, err)
			}
			if tc.fake.IsOpen() {
				t.Error("device left open after a failure")
			}
		})
	}
}

// TestHubFailsAtOnceOnMismatch: a camera that does not offer the configured
// format is opened once and the hub shows the reason, without restarts.
func TestHubFailsAtOnceOnMismatch(t *testing.T) {
	fake := &v4l2test.Fake{Offered: camFormats[1:3]} // YUYV only
	h := hub.New(hub.Options{Restart: retry.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	defer h.Close()
	if err := h.Add(newSource(fake, "mjpeg")); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("cam", sensors.SubscribeOptions{Queue: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	deadline := time.Now().Add(10 * time.Second)
	for h.Stats()[0].State != hub.StateError && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st := h.Stats()[0]
	// A transient failure sets the error state and counts a restart in one
	// step, so none counted here means the hub took it as permanent.
	if st.State != hub.StateError || st.Restarts != 0 {
		t.Fatalf("state %s restarts %d, want error with no restarts", st.State, st.Restarts)
	}
	if !strings.Contains(st.LastError, "YUYV") || !strings.Contains(st.LastError, v4l2.ErrNoFormat.Error()) {
		t.Errorf("last error %q does not give the reason", st.LastError)
	}
	if fake.Opens() != 1 || fake.IsOpen() {
		t.Errorf("opens %d, open %v", fake.Opens(), fake.IsOpen())
	}
}

// TestHubRecoversAndReleases runs the camera through the real hub: an unplug
// is retried with backoff, the device is never opened twice, and the last
// subscriber leaving releases it.
func TestHubRecoversAndReleases(t *testing.T) {
	frames := v4l2test.MJPEGFrames(t)
	fake := &v4l2test.Fake{Offered: camFormats, FailAfter: 4,
		Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCMJPEG: frames}}
	h := hub.New(hub.Options{Restart: retry.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	defer h.Close()
	if err := h.Add(newSource(fake, "mjpeg")); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("cam", sensors.SubscribeOptions{Queue: 64, Policy: sensors.NoDrop})
	if err != nil {
		t.Fatal(err)
	}
	// Each open delivers 4 frames, then the camera "unplugs".
	n := 0
	timeout := time.After(20 * time.Second)
	for fake.Opens() < 3 {
		select {
		case _, ok := <-sub.C():
			if !ok {
				t.Fatal("subscription closed")
			}
			n++
		case <-timeout:
			t.Fatalf("no recovery: opens=%d samples=%d", fake.Opens(), n)
		}
	}
	sub.Close()
	deadline := time.Now().Add(10 * time.Second)
	for fake.IsOpen() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if fake.IsOpen() {
		t.Fatal("device still open after the last subscriber left")
	}
	if fake.DoubleOpen() {
		t.Fatal("device opened twice at once")
	}
	st := h.Stats()[0]
	if st.Restarts == 0 {
		t.Errorf("hub saw no restarts: %+v", st)
	}
}
