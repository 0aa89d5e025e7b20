//go:build vboard

// Board cases (scripts/vboard): the camera driver against the kernel's vivid
// driver, a virtual V4L2 device with fault injection, as on a board. vivid is
// loaded as one webcam-like capture device (input 0 of type webcam: discrete
// sizes 320x180 … 3840x2160, YUYV among its formats; no MJPEG or H.264), its
// faults are driven through its own controls, found by name at run time.

package v4l2_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/internal/vboard"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/v4l2"
	"github.com/edge-agent/edge-agent/sensors/v4l2/videodev"
)

// vivid's node_types bits (modinfo vivid).
const (
	vividCapture    = 0x1
	vividOutput     = 0x100
	vividMetaCap    = 0x20000
	vividMetaOutput = 0x40000
)

// vivid's fault-injection controls (Documentation/admin-guide/media/vivid.rst).
const (
	ctrlStreamOnError = "Inject VIDIOC_STREAMON Error"
	ctrlQbufError     = "Inject VIDIOC_QBUF Error"
	ctrlReqbufsError  = "Inject VIDIOC_REQBUFS Error"
	ctrlFatalError    = "Inject Fatal Streaming Error"
	ctrlBufFlagError  = "Inject V4L2_BUF_FLAG_ERROR"
	ctrlDisconnect    = "Disconnect"
	// An integer 0..100: the share of frames vivid skips, leaving the
	// buffers queued. At 100 the stream stays on and nothing arrives.
	ctrlPercDropped = "Percentage of Dropped Buffers"
)

var boardLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))

// vividParams are the module parameters of one vivid instance with the
// given node types and a single webcam input.
func vividParams(nodeTypes int) []string {
	return []string{"n_devs=1", fmt.Sprintf("node_types=%#x", nodeTypes), "num_inputs=1", "input_types=0"}
}

// loadVivid loads vivid for this case and unloads it, with what it pulled
// in, afterwards. A copy left loaded (by another case) is unloaded first, so
// these parameters apply.
func loadVivid(t *testing.T, nodeTypes int) {
	t.Helper()
	vboard.Modprobe(t, "vivid", vividParams(nodeTypes)...)
}

// vividNodes waits until vivid has at least n /dev/video* nodes and returns
// them with their capabilities.
func vividNodes(t *testing.T, n int) map[string]videodev.Capability {
	t.Helper()
	var nodes map[string]videodev.Capability
	vboard.WaitFor(t, 10*time.Second, func() error {
		nodes = map[string]videodev.Capability{}
		paths, _ := filepath.Glob("/dev/video*")
		for _, p := range paths {
			d, err := videodev.Open(p)
			if err != nil {
				continue
			}
			c, err := d.QueryCap()
			d.Close()
			if err == nil && c.Driver == "vivid" {
				nodes[p] = c
			}
		}
		if len(nodes) < n {
			return fmt.Errorf("vivid has %d video nodes, want %d: %v", len(nodes), n, nodes)
		}
		return nil
	})
	return nodes
}

// vividCaptureNode returns vivid's video capture node.
func vividCaptureNode(t *testing.T) string {
	t.Helper()
	for p, c := range vividNodes(t, 1) {
		if c.IsVideoCapture() {
			return p
		}
	}
	t.Fatal("vivid has no video capture node")
	return ""
}

// press presses one of vivid's button controls, through a node of its own
// that it closes at once (vivid's Disconnect reconnects only when every
// handle is closed).
func press(t *testing.T, node, control string) {
	t.Helper()
	d, err := videodev.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := d.ControlByName(control)
	if err != nil {
		t.Fatalf("vivid control: %v", err)
	}
	if c.Type != videodev.CtrlTypeButton {
		t.Fatalf("control %q has type %d, not a button", control, c.Type)
	}
	if err := d.SetControl(c.ID, 1); err != nil {
		t.Fatalf("press %q: %v", control, err)
	}
}

// setControl sets one of vivid's integer controls, through a node of its own.
func setControl(t *testing.T, node, control string, value int32) {
	t.Helper()
	d, err := videodev.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := d.ControlByName(control)
	if err != nil {
		t.Fatalf("vivid control: %v", err)
	}
	if c.Type != videodev.CtrlTypeInteger {
		t.Fatalf("control %q has type %d, not an integer", control, c.Type)
	}
	if err := d.SetControl(c.ID, value); err != nil {
		t.Fatalf("set %q to %d: %v", control, value, err)
	}
}

func boardSource(node string, w, h int) *v4l2.Source {
	cfg := v4l2.Config{Device: node, Format: "yuyv", Width: w, Height: h, FPS: 15}
	return v4l2.NewSource("cam", cfg, sensors.Env{Logger: boardLog})
}

// checkJPEG decodes a sample and checks its size and that it shows vivid's
// colour bars: white (75 %) on the left, black on the right.
func checkJPEG(t *testing.T, s sensors.Sample, w, h int) {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(s.Data))
	if err != nil {
		t.Fatalf("sample %d is not a JPEG: %v", s.Seq, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("sample %d is %dx%d, want %dx%d", s.Seq, b.Dx(), b.Dy(), w, h)
	}
	luma := func(x int) uint32 {
		r, g, b, _ := img.At(x, h*3/4).RGBA()
		return (299*r + 587*g + 114*b) / 1000 >> 8
	}
	if l, r := luma(w/32), luma(w-1-w/32); l < r+100 {
		t.Errorf("sample %d: left luma %d, right %d; want vivid's colour bars (white … black)", s.Seq, l, r)
	}
}

// TestBoardDiscover: `edge-agent sensors` lists vivid's capture node with
// its formats and sizes, and none of its output and metadata nodes, which
// are V4L2 nodes too (the old listing used the device-wide capabilities and
// showed them all as cameras).
func TestBoardDiscover(t *testing.T) {
	loadVivid(t, vividCapture|vividOutput|vividMetaCap|vividMetaOutput)
	nodes := vividNodes(t, 4)
	var capture []string
	for p, c := range nodes {
		if c.IsVideoCapture() {
			capture = append(capture, p)
		}
	}
	if len(capture) != 1 {
		t.Fatalf("vivid capture nodes %v among %v", capture, nodes)
	}
	check := func(t *testing.T, video []v4l2.Device) {
		t.Helper()
		var listed []string
		for _, d := range video {
			if _, ok := nodes[d.Path]; ok {
				listed = append(listed, d.Path)
			}
		}
		if !slices.Equal(listed, capture) {
			t.Fatalf("listed vivid nodes %v, want only the capture node %v (nodes: %v)", listed, capture, nodes)
		}
		i := slices.IndexFunc(video, func(d v4l2.Device) bool { return d.Path == capture[0] })
		d := video[i]
		if d.Error != "" || d.Driver != "vivid" || d.Card == "" {
			t.Fatalf("capture node entry %+v", d)
		}
		j := slices.IndexFunc(d.Formats, func(f v4l2.FormatInfo) bool { return f.FourCC == "YUYV" })
		if j < 0 {
			t.Fatalf("no YUYV among %d formats", len(d.Formats))
		}
		for _, size := range []string{"320x180", "640x480", "1280x720"} {
			if !slices.Contains(d.Formats[j].Sizes, size) {
				t.Errorf("YUYV sizes %v lack %s", d.Formats[j].Sizes, size)
			}
		}
	}
	t.Run("Discover", func(t *testing.T) {
		video, err := v4l2.Discover("/dev")
		if err != nil {
			t.Fatal(err)
		}
		check(t, video)
	})
	t.Run("edge-agent sensors -json", func(t *testing.T) {
		agent := os.Getenv("VBOARD_AGENT")
		if agent == "" {
			t.Skip("needs the agent binary named in VBOARD_AGENT (make test-board sets it)")
		}
		out, err := exec.Command(agent, "sensors", "-json").Output()
		if err != nil {
			t.Fatalf("%s sensors -json: %v", agent, err)
		}
		var inv struct {
			Video []v4l2.Device `json:"video"`
		}
		if err := json.Unmarshal(out, &inv); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		check(t, inv.Video)
	})
}

// TestBoardYUYVToJPEG: YUYV frames at two sizes become JPEGs of that size,
// counted in order, with the picture vivid drew.
func TestBoardYUYVToJPEG(t *testing.T) {
	loadVivid(t, vividCapture)
	node := vividCaptureNode(t)
	for _, size := range [][2]int{{320, 180}, {640, 480}} {
		w, h := size[0], size[1]
		t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
			src := boardSource(node, w, h)
			got, err := collect(t, src, 4)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(got) != 4 {
				t.Fatalf("%d samples", len(got))
			}
			for i, s := range got {
				if s.Seq != uint64(i) || s.Class != sensors.Still {
					t.Fatalf("sample %d: seq %d class %v", i, s.Seq, s.Class)
				}
				checkJPEG(t, s, w, h)
			}
			if info := src.Info(); info.Width != w || info.Height != h || info.Rate != 15 {
				t.Errorf("info %+v, want %dx%d at 15 fps (vivid's webcam offers 1/15 s)", info, w, h)
			}
			if n := src.BadFrames(); n != 0 {
				t.Errorf("%d bad frames", n)
			}
		})
	}
}

// TestBoardReopenAtOnce: stop and reopen the camera immediately, several
// times: the buffers of the last run are released by then.
func TestBoardReopenAtOnce(t *testing.T) {
	loadVivid(t, vividCapture)
	src := boardSource(vividCaptureNode(t), 320, 180)
	for i := range 4 {
		got, err := collect(t, src, 2)
		if err != nil || len(got) != 2 {
			t.Fatalf("open %d: %d samples, %v", i+1, len(got), err)
		}
	}
}

// TestBoardSetupErrorThenReopen is defect 1 of issue 12: a set-up ioctl that
// fails after the buffers were mapped (STREAMON, as uvcvideo does with too
// little USB bandwidth; QBUF) or while requesting them must leave nothing
// behind, so the very next open configures and streams. With
// blackjack/webcam the reopen failed S_FMT with EBUSY until the process
// exited.
func TestBoardSetupErrorThenReopen(t *testing.T) {
	for _, tc := range []struct{ control, ioctl string }{
		{ctrlStreamOnError, "VIDIOC_STREAMON"},
		{ctrlQbufError, "VIDIOC_QBUF"},
		{ctrlReqbufsError, "VIDIOC_REQBUFS"},
	} {
		t.Run(tc.ioctl, func(t *testing.T) {
			loadVivid(t, vividCapture)
			node := vividCaptureNode(t)
			src := boardSource(node, 320, 180)
			press(t, node, tc.control)
			_, err := collect(t, src, 1)
			if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), tc.ioctl) {
				t.Errorf("Run = %v, want %s failing with EINVAL", err, tc.ioctl)
			}
			if retry.IsPermanent(err) {
				t.Errorf("a failed %s is marked permanent; it must be retried", tc.ioctl)
			}
			got, err := collect(t, src, 2)
			if err != nil || len(got) != 2 {
				t.Fatalf("reopen right after the failed %s: %d samples, %v", tc.ioctl, len(got), err)
			}
			checkJPEG(t, got[1], 320, 180)
		})
	}
}

// rig runs the camera under the real hub, with one subscriber, the way the
// agent does; the hub restarts the source after each failure.
type rig struct {
	h   *hub.Hub
	src *v4l2.Source
	sub sensors.Subscription
}

func startRig(t *testing.T, node string) *rig {
	t.Helper()
	return startRigWith(t, boardSource(node, 320, 180))
}

func startRigWith(t *testing.T, src *v4l2.Source) *rig {
	t.Helper()
	r := &rig{
		h:   hub.New(hub.Options{Logger: boardLog, Restart: retry.Policy{Min: 100 * time.Millisecond, Max: time.Second}}),
		src: src,
	}
	t.Cleanup(r.h.Close) // before vivid is unloaded (cleanups run last first)
	if err := r.h.Add(r.src); err != nil {
		t.Fatal(err)
	}
	r.subscribe(t)
	r.waitSamples(t, 3)
	return r
}

func (r *rig) subscribe(t *testing.T) {
	t.Helper()
	sub, err := r.h.Subscribe("cam", sensors.SubscribeOptions{Queue: 4, Label: "board"})
	if err != nil {
		t.Fatal(err)
	}
	r.sub = sub
}

func (r *rig) stat() hub.Stat { return r.h.Stats()[0] }

func (r *rig) waitFor(t *testing.T, what string, timeout time.Duration, cond func(hub.Stat) bool) hub.Stat {
	t.Helper()
	var st hub.Stat
	vboard.WaitFor(t, timeout, func() error {
		if st = r.stat(); cond(st) {
			return nil
		}
		return fmt.Errorf("waiting for %s: %+v", what, st)
	})
	return st
}

// waitSamples waits for n more samples from the source, then checks that
// the next one the subscriber receives is a right-sized JPEG.
func (r *rig) waitSamples(t *testing.T, n uint64) {
	t.Helper()
	from := r.stat().Samples
	r.waitFor(t, fmt.Sprintf("%d more samples", n), 30*time.Second, func(st hub.Stat) bool { return st.Samples >= from+n })
	for drained := false; !drained; {
		select {
		case <-r.sub.C():
		default:
			drained = true
		}
	}
	select {
	case s := <-r.sub.C():
		checkJPEG(t, s, 320, 180)
	case <-time.After(30 * time.Second):
		t.Fatal("no sample for the subscriber")
	}
}

// restarted waits for the hub to record a failure after `before` restarts
// and for the camera to deliver again, and returns the hub's error.
func (r *rig) restarted(t *testing.T, before uint64) string {
	t.Helper()
	st := r.waitFor(t, "the source to fail and be restarted", 30*time.Second, func(st hub.Stat) bool { return st.Restarts > before })
	r.waitSamples(t, 3)
	return st.LastError
}

// TestBoardFaultsRecover: each of vivid's faults makes the source fail (or,
// for error-flagged buffers, drop frames) and the camera comes back by
// itself under the hub, with no help from the test.
func TestBoardFaultsRecover(t *testing.T) {
	t.Run("fatal streaming error", func(t *testing.T) {
		loadVivid(t, vividCapture)
		node := vividCaptureNode(t)
		r := startRig(t, node)
		press(t, node, ctrlFatalError)
		if e := r.restarted(t, 0); !strings.Contains(e, unix.EIO.Error()) {
			t.Errorf("hub error %q, want the queue's EIO", e)
		}
	})
	t.Run("STREAMON error", func(t *testing.T) {
		loadVivid(t, vividCapture)
		node := vividCaptureNode(t)
		r := startRig(t, node)
		// The next STREAMON fails: the one after the last subscriber leaves
		// and a new one comes.
		r.sub.Close()
		r.waitFor(t, "the source to stop", 10*time.Second, func(st hub.Stat) bool { return st.State == hub.StateIdle })
		press(t, node, ctrlStreamOnError)
		r.subscribe(t)
		if e := r.restarted(t, 0); !strings.Contains(e, "VIDIOC_STREAMON") {
			t.Errorf("hub error %q, want the failed VIDIOC_STREAMON", e)
		}
	})
	t.Run("error-flagged buffers", func(t *testing.T) {
		loadVivid(t, vividCapture)
		node := vividCaptureNode(t)
		r := startRig(t, node)
		for i := range uint64(3) {
			press(t, node, ctrlBufFlagError) // flags the next buffer
			deadline := time.Now().Add(30 * time.Second)
			for r.src.BadFrames() <= i && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := r.src.BadFrames(); n != i+1 {
				t.Fatalf("after %d flagged buffers BadFrames = %d", i+1, n)
			}
		}
		r.waitSamples(t, 3)
		if st := r.stat(); st.Restarts != 0 || st.State != hub.StateRunning {
			t.Errorf("a flagged buffer stopped the camera: %+v", st)
		}
	})
	t.Run("Disconnect", func(t *testing.T) {
		loadVivid(t, vividCapture)
		node := vividCaptureNode(t)
		r := startRig(t, node)
		// vivid behaves as an unplugged USB device: every ioctl on an open
		// node fails with ENODEV, and the device comes back once every handle
		// to it is closed, which the source does when Run fails.
		press(t, node, ctrlDisconnect)
		if e := r.restarted(t, 0); !strings.Contains(e, unix.ENODEV.Error()) {
			t.Errorf("hub error %q, want ENODEV", e)
		}
	})
	t.Run("rmmod and insmod", func(t *testing.T) {
		loadVivid(t, vividCapture)
		node := vividCaptureNode(t)
		r := startRig(t, node)
		// The kernel refuses to unload a module whose node is open, so the
		// driver is first unbound from its device, the way a USB camera
		// leaves: the node is unregistered under the open handle (ENODEV)
		// and disappears. Once the source has let go, vivid is unloaded and
		// loaded again; the hub's retries open the new node.
		devs, _ := filepath.Glob("/sys/bus/platform/drivers/vivid/vivid.*")
		if len(devs) != 1 {
			t.Fatalf("vivid platform devices %v", devs)
		}
		if err := os.WriteFile("/sys/bus/platform/drivers/vivid/unbind", []byte(filepath.Base(devs[0])), 0); err != nil {
			t.Fatalf("unbind: %v", err)
		}
		r.waitFor(t, "the unplug to fail the source", 30*time.Second, func(st hub.Stat) bool { return st.Restarts > 0 })
		if err := vboard.Reload("vivid", vividParams(vividCapture)...); err != nil {
			t.Fatal(err)
		}
		if got := vividCaptureNode(t); got != node {
			t.Fatalf("vivid came back as %s, not %s", got, node)
		}
		r.waitSamples(t, 3)
	})
}

// TestBoardStallRecovers: with vivid's "Percentage of Dropped Buffers" at
// 100 the camera stays open and streaming, with no error and no frame, as a
// wedged UVC camera does. The hub's watchdog closes and reopens it once it
// has been silent for stall_timeout; while the drop stays on, each reopen
// ends at first_frame_timeout; once it is off, frames flow again. Each
// stall is counted, with its reason.
func TestBoardStallRecovers(t *testing.T) {
	loadVivid(t, vividCapture)
	node := vividCaptureNode(t)
	cfg := v4l2.Config{Device: node, Format: "yuyv", Width: 320, Height: 180, FPS: 15,
		FirstFrameTimeout: conf.Duration(4 * time.Second), StallTimeout: conf.Duration(2 * time.Second)}
	r := startRigWith(t, v4l2.NewSource("cam", cfg, sensors.Env{Logger: boardLog}))
	setControl(t, node, ctrlPercDropped, 100)
	st := r.waitFor(t, "the silent camera to stall", 30*time.Second, func(st hub.Stat) bool { return st.Stalls >= 1 })
	if !strings.HasPrefix(st.LastStall.Reason, "no sample for 2s (after ") || st.Restarts < st.Stalls {
		t.Errorf("first stall: %+v, want no sample for 2s after some frames", st)
	}
	st = r.waitFor(t, "a reopen that stays silent", 30*time.Second, func(st hub.Stat) bool { return st.Stalls >= 2 })
	if st.LastStall.Reason != "no sample in the first 4s" {
		t.Errorf("second stall: %+v, want no first frame within 4s", st)
	}
	setControl(t, node, ctrlPercDropped, 0)
	r.waitSamples(t, 3)
	if st := r.stat(); st.State != hub.StateRunning {
		t.Errorf("after the drop was turned off: %+v", st)
	}
}

// TestBoardControls: the controls the fault cases rely on exist under the
// names used above, as buttons (the drop percentage as an integer), on the
// capture node.
func TestBoardControls(t *testing.T) {
	loadVivid(t, vividCapture)
	d, err := videodev.Open(vividCaptureNode(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cs, err := d.Controls()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]uint32{}
	for _, c := range cs {
		names[c.Name] = c.Type
	}
	var missing []string
	for _, n := range []string{ctrlStreamOnError, ctrlQbufError, ctrlReqbufsError, ctrlFatalError, ctrlBufFlagError, ctrlDisconnect} {
		if names[n] != videodev.CtrlTypeButton {
			missing = append(missing, n)
		}
	}
	if names[ctrlPercDropped] != videodev.CtrlTypeInteger {
		missing = append(missing, ctrlPercDropped+" (integer)")
	}
	if len(missing) > 0 {
		all := make([]string, 0, len(names))
		for n := range names {
			all = append(all, n)
		}
		sort.Strings(all)
		t.Fatalf("no button controls %q among %q", missing, all)
	}
}
