package command_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/command"
	"github.com/edge-agent/edge-agent/sensors/v4l2/v4l2test"
)

// stallRig runs a command sensor under the real hub, as the agent does, with
// short watchdog timeouts and a fast backoff. Each start of the command is
// numbered: the script writes its number to runs and the pid of the process
// it leaves hanging to hang.N, so the test can check it was stopped.
type stallRig struct {
	h   *hub.Hub
	sub sensors.Subscription
	dir string
}

// startStallRig starts a command whose body (a shell script) sees $n, the
// number of this start, $dir, and $frames, a file of 10 MJPEG frames.
func startStallRig(t *testing.T, body string, first, stall time.Duration) *stallRig {
	t.Helper()
	r := &stallRig{dir: t.TempDir()}
	frames := filepath.Join(v4l2test.TestdataDir(t), "testsrc-640x480-10frames.mjpeg")
	head := fmt.Sprintf("dir=%s frames=%s\nn=$(($(cat $dir/runs 2>/dev/null || echo 0) + 1)); echo $n > $dir/runs\n", r.dir, frames)
	src, err := command.New("cam", command.Config{Argv: []string{script(t, head+body)}, Output: "mjpeg", Rate: 10,
		FirstFrameTimeout: conf.Duration(first), StallTimeout: conf.Duration(stall)}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	r.h = hub.New(hub.Options{Restart: retry.Policy{Min: time.Millisecond, Max: 10 * time.Millisecond}})
	t.Cleanup(r.h.Close)
	if err := r.h.Add(src); err != nil {
		t.Fatal(err)
	}
	if r.sub, err = r.h.Subscribe("cam", sensors.SubscribeOptions{Queue: 64, Policy: sensors.NoDrop}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.sub.Close)
	return r
}

// stills waits for n stills.
func (r *stallRig) stills(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(60 * time.Second) // turns a hang into a failure
	for i := 0; i < n; i++ {
		select {
		case <-r.sub.C():
		case <-timeout:
			t.Fatalf("only %d of %d stills; hub: %+v", i, n, r.h.Stats()[0])
		}
	}
}

// stopped checks that the process start n left hanging is gone.
func (r *stallRig) stopped(t *testing.T, n int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("hang.%d", n)))
	if err != nil {
		t.Fatalf("start %d recorded no hanging process: %v", n, err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d of start %d survived its stall", pid, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchdogRestartsSilentCommand: a command that writes 10 frames and
// then keeps running without writing (an encoder whose camera hung) is
// stopped by the hub's watchdog once it has been silent for the stall
// timeout, started again with backoff, and delivers again; each time is
// counted as a stall and a restart, and the silent process is gone. Without
// the watchdog the first silent command holds the sensor for good.
func TestWatchdogRestartsSilentCommand(t *testing.T) {
	r := startStallRig(t, `cat $frames
sleep 300 & echo $! > $dir/hang.$n
wait`, 10*time.Second, 300*time.Millisecond)
	r.stills(t, 25) // three starts at least: two stalls
	st := r.h.Stats()[0]
	if st.Stalls < 2 || st.Restarts < st.Stalls || st.LastStall.At.IsZero() {
		t.Fatalf("after 25 stills: %+v, want 2 stalls or more, each a restart", st)
	}
	if want := "no sample for 300ms (after "; !strings.HasPrefix(st.LastStall.Reason, want) {
		t.Errorf("last stall %q, want %q…", st.LastStall.Reason, want)
	}
	r.stopped(t, 1)
	r.stopped(t, 2)
}

// TestWatchdogRestartsCommandWithoutFirstFrame: a command that never writes
// its first frame (rpicam-vid stuck opening the camera) is stopped at the
// first-frame timeout and started again; the next start delivers.
func TestWatchdogRestartsCommandWithoutFirstFrame(t *testing.T) {
	r := startStallRig(t, `if [ $n = 1 ]; then
	sleep 300 & echo $! > $dir/hang.$n
	wait
fi
cat $frames`, time.Second, 10*time.Second)
	r.stills(t, 10)
	st := r.h.Stats()[0]
	if st.Stalls < 1 || st.Restarts < st.Stalls || st.LastStall.Reason != "no sample in the first 1s" {
		t.Fatalf("after 10 stills: %+v, want a stall for the first frame", st)
	}
	r.stopped(t, 1)
}

// TestStallTimeouts: the defaults apply to a zero Config, and the stall
// timeout is never shorter than three frame intervals.
func TestStallTimeouts(t *testing.T) {
	for _, tc := range []struct {
		cfg          command.Config
		first, stall time.Duration
	}{
		{command.Config{Output: "h264", Rate: 30}, command.DefaultFirstFrameTimeout, command.DefaultStallTimeout},
		{command.Config{Output: "mjpeg", Rate: 0.5}, command.DefaultFirstFrameTimeout, 6 * time.Second},
		{command.Config{Output: "pcm", Rate: 16000, StallTimeout: conf.Duration(time.Second)}, command.DefaultFirstFrameTimeout, time.Second},
		{command.Config{Output: "h264", Rate: 15, FirstFrameTimeout: conf.Duration(time.Minute), StallTimeout: conf.Duration(100 * time.Millisecond)},
			time.Minute, 200 * time.Millisecond},
	} {
		tc.cfg.Argv = []string{"rpicam-vid"}
		src := command.NewSource("cam", tc.cfg, sensors.Env{})
		if first, stall := src.StallTimeouts(); first != tc.first || stall != tc.stall {
			t.Errorf("%+v: timeouts %v, %v; want %v, %v", tc.cfg, first, stall, tc.first, tc.stall)
		}
	}
	var c command.Config
	c.SetDefaults()
	if c.FirstFrameTimeout.D() != 10*time.Second || c.StallTimeout.D() != 3*time.Second {
		t.Errorf("defaults %v, %v; want 10s, 3s", c.FirstFrameTimeout, c.StallTimeout)
	}
}
