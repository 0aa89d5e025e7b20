package v4l2_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/v4l2"
	"github.com/edge-agent/edge-agent/sensors/v4l2/v4l2test"
)

// watchedRig runs a camera with short watchdog timeouts under the real hub.
func watchedRig(t *testing.T, open v4l2.Opener, first, stall time.Duration) (*hub.Hub, sensors.Subscription) {
	t.Helper()
	cfg := v4l2.Config{Device: "/dev/video0", Format: "mjpeg", FPS: 15,
		FirstFrameTimeout: conf.Duration(first), StallTimeout: conf.Duration(stall)}
	h := hub.New(hub.Options{Restart: retry.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	t.Cleanup(h.Close)
	if err := h.Add(v4l2.NewSource("cam", cfg, sensors.Env{}, v4l2.WithOpener(open))); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("cam", sensors.SubscribeOptions{Queue: 64, Policy: sensors.NoDrop})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return h, sub
}

func waitStills(t *testing.T, h *hub.Hub, sub sensors.Subscription, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second) // turns a hang into a failure
	for i := 0; i < n; i++ {
		select {
		case <-sub.C():
		case <-timeout:
			t.Fatalf("only %d of %d stills; hub: %+v", i, n, h.Stats()[0])
		}
	}
}

// TestWatchdogReopensSilentCamera: a camera that sends its frames and then
// nothing, with no error (a wedged UVC camera keeps its node), is closed by
// the hub's watchdog after the stall timeout and opened again, never twice
// at once; each stall is counted.
func TestWatchdogReopensSilentCamera(t *testing.T) {
	frames := v4l2test.MJPEGFrames(t)
	fake := &v4l2test.Fake{Offered: camFormats, NoLoop: true, Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCMJPEG: frames}}
	h, sub := watchedRig(t, fake.Opener(), 10*time.Second, 200*time.Millisecond)
	waitStills(t, h, sub, 3*len(frames)) // three opens: two stalls
	st := h.Stats()[0]
	if st.Stalls < 2 || st.Restarts < st.Stalls || !strings.HasPrefix(st.LastStall.Reason, "no sample for 200ms (after ") {
		t.Fatalf("stats %+v, want 2 stalls or more after 200ms of silence", st)
	}
	if fake.Opens() < 3 || fake.DoubleOpen() {
		t.Errorf("opens %d, double open %v", fake.Opens(), fake.DoubleOpen())
	}
}

// TestWatchdogReopensCameraWithoutFirstFrame: an open that never yields a
// frame is closed at the first-frame timeout; the next open streams.
func TestWatchdogReopensCameraWithoutFirstFrame(t *testing.T) {
	frames := v4l2test.MJPEGFrames(t)
	silent := &v4l2test.Fake{Offered: camFormats} // no frames: Run waits for ctx
	live := &v4l2test.Fake{Offered: camFormats, Frames: map[v4l2.FourCC][][]byte{v4l2.FourCCMJPEG: frames}}
	var opens atomic.Int32
	open := func(path string) (v4l2.FrameSource, error) {
		if opens.Add(1) == 1 {
			return silent.Opener()(path)
		}
		return live.Opener()(path)
	}
	h, sub := watchedRig(t, open, 500*time.Millisecond, 10*time.Second)
	waitStills(t, h, sub, 5)
	st := h.Stats()[0]
	if st.Stalls != 1 || st.LastStall.Reason != "no sample in the first 500ms" {
		t.Fatalf("stats %+v, want one stall for the first frame", st)
	}
	if silent.IsOpen() || silent.Closes() != 1 {
		t.Errorf("the silent open was not released (open %v, closes %d)", silent.IsOpen(), silent.Closes())
	}
}

// TestStallTimeouts: defaults for a zero Config; the stall timeout is at
// least three frame intervals, at the configured rate before the device is
// open.
func TestStallTimeouts(t *testing.T) {
	for _, tc := range []struct {
		cfg          v4l2.Config
		first, stall time.Duration
	}{
		{v4l2.Config{FPS: 30}, v4l2.DefaultFirstFrameTimeout, v4l2.DefaultStallTimeout},
		{v4l2.Config{FPS: 0.5}, v4l2.DefaultFirstFrameTimeout, 6 * time.Second},
		{v4l2.Config{FPS: 15, FirstFrameTimeout: conf.Duration(time.Minute), StallTimeout: conf.Duration(100 * time.Millisecond)},
			time.Minute, 200 * time.Millisecond},
	} {
		src := v4l2.NewSource("cam", tc.cfg, sensors.Env{})
		if first, stall := src.StallTimeouts(); first != tc.first || stall != tc.stall {
			t.Errorf("%+v: timeouts %v, %v; want %v, %v", tc.cfg, first, stall, tc.first, tc.stall)
		}
	}
	var c v4l2.Config
	c.SetDefaults()
	if c.FirstFrameTimeout.D() != 10*time.Second || c.StallTimeout.D() != 3*time.Second {
		t.Errorf("defaults %v, %v; want 10s, 3s", c.FirstFrameTimeout, c.StallTimeout)
	}
}
