package rtm_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// x264Clip encodes 4 s of ffmpeg's 320x240 test pattern at 15 fps with
// libx264 and args into an Annex-B file, and returns a synthetic camera
// "video" looping it.
func x264Clip(t *testing.T, args ...string) *synthetic.H264 {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg; .ci/run installs it): the encoded-stream cases need libx264")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	file := filepath.Join(t.TempDir(), "clip.h264")
	cmd := append([]string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
		"-t", "4", "-c:v", "libx264"}, args...)
	cmd = append(cmd, "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-y", file)
	var stderr bytes.Buffer
	c := exec.CommandContext(ctx, ffmpeg, cmd...)
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	cfg := synthetic.Config{Signal: synthetic.SignalH264, File: file, FPS: 15, Width: 320, Height: 240}
	cfg.SetDefaults()
	src, err := synthetic.NewH264("video", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// videoEnv is an env whose camera is vsrc and whose link logs into a
// buffer.
func videoEnv(t *testing.T, vsrc sensors.Source) (*env, *logxtest.Buffer) {
	t.Helper()
	e := newEnvVideo(t, rtmtest.Options{PingInterval: time.Second}, vsrc)
	logs := &logxtest.Buffer{}
	e.deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return e, logs
}

// lastSession is the fake's latest session.
func lastSession(t *testing.T, e *env) rtmtest.SessionInfo {
	t.Helper()
	s := e.fake.Sessions()
	if len(s) == 0 {
		t.Fatal("the fake saw no session")
	}
	return s[len(s)-1]
}

// framesAtFake waits until the fake's latest session has received at
// least n more video frames than it had: every unit before them went
// through the link's check.
func framesAtFake(t *testing.T, e *env, n int64) {
	t.Helper()
	from := lastSession(t, e).VideoFrames
	agenttest.Eventually(t, "video frames at the fake", func() bool { return lastSession(t, e).VideoFrames >= from+n })
}

// TestVideoCheckRecordedClip publishes the repository's clip (libx264
// constrained baseline, level 1.2, 320x240 at 15 fps, 1 s GOP): /status
// describes it without problems, the offer announces its own
// profile-level-id (42c00c, not the fixed 42e01f it used to), and the fake,
// checking the stream against the offer like a browser, finds nothing.
func TestVideoCheckRecordedClip(t *testing.T) {
	vcfg := synthetic.Config{Signal: synthetic.SignalH264}
	vcfg.SetDefaults()
	vsrc, err := synthetic.NewH264("video", vcfg)
	if err != nil {
		t.Fatal(err)
	}
	e, logs := videoEnv(t, vsrc)
	serveSession(t, manualLink(t, e))
	agenttest.Eventually(t, "the stream's SPS at the fake", func() bool { return lastSession(t, e).StreamProfileLevelID != "" })
	framesAtFake(t, e, 45) // 3 s: the measured rate and the keyframe gap are known

	s := lastSession(t, e)
	if !strings.Contains(s.VideoFmtp, "profile-level-id=42c00c") || s.StreamProfileLevelID != "42c00c" {
		t.Errorf("offer fmtp %q, stream %s; want profile-level-id=42c00c for both", s.VideoFmtp, s.StreamProfileLevelID)
	}
	if len(s.MediaErrors) != 0 {
		t.Errorf("the fake found %q", s.MediaErrors)
	}
	d := e.stats.Details()
	if ok, _ := regexp.MatchString(`^constrained baseline 1\.2 320x240 1[45](\.\d)?fps$`, d[rtm.DetailVideo]); !ok {
		t.Errorf("/status video %q, want constrained baseline 1.2 320x240 ~15fps", d[rtm.DetailVideo])
	}
	if p, ok := d[rtm.DetailVideoProblems]; ok {
		t.Errorf("/status video_problems %q, want none", p)
	}
	if got := d[rtm.DetailVideoProfileLevelID]; got != "42c00c" {
		t.Errorf("/status video_profile_level_id %q, want 42c00c", got)
	}
	if n := strings.Count(logs.String(), "will not play"); n != 0 {
		t.Errorf("%d video warnings logged:\n%s", n, logs.String())
	}
}

// TestVideoCheckBFrames publishes libx264 high profile with B-frames:
// /status names the B-frames (the stream is still announced as what it
// is: high, 64xxxx), and the log says so once, not once per frame or per
// refresh.
func TestVideoCheckBFrames(t *testing.T) {
	e, logs := videoEnv(t, x264Clip(t, "-profile:v", "high", "-bf", "2", "-g", "15", "-pix_fmt", "yuv420p"))
	serveSession(t, manualLink(t, e))
	agenttest.Eventually(t, "B-frames in /status", func() bool {
		return strings.Contains(e.stats.Details()[rtm.DetailVideoProblems], "B-frames")
	})
	framesAtFake(t, e, 45) // three more refreshes of /status

	d := e.stats.Details()
	if !strings.HasPrefix(d[rtm.DetailVideo], "high ") {
		t.Errorf("/status video %q, want the high profile", d[rtm.DetailVideo])
	}
	if p := d[rtm.DetailVideoProblems]; strings.Contains(p, ";") {
		t.Errorf("/status video_problems %q, want the B-frames only", p)
	}
	s := lastSession(t, e)
	if !strings.Contains(s.VideoFmtp, "profile-level-id=64") || !strings.HasPrefix(s.StreamProfileLevelID, "64") ||
		!strings.Contains(s.VideoFmtp, s.StreamProfileLevelID) {
		t.Errorf("offer fmtp %q, stream %s; want the stream's 64xxxx announced", s.VideoFmtp, s.StreamProfileLevelID)
	}
	if len(s.MediaErrors) != 0 {
		t.Errorf("the fake found %q", s.MediaErrors)
	}
	if n := strings.Count(logs.String(), "B-frames"); n != 1 {
		t.Errorf("%d log lines name the B-frames, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "will not play"); n != 1 {
		t.Errorf("%d video warnings logged, want 1:\n%s", n, logs.String())
	}
}

// heldCamera sends nothing until release is closed.
type heldCamera struct {
	*synthetic.H264
	release chan struct{}
}

func (h heldCamera) Run(ctx context.Context, out chan<- sensors.Sample) error {
	select {
	case <-ctx.Done():
		return nil
	case <-h.release:
	}
	return h.H264.Run(ctx, out)
}

// TestVideoCheckFallback: a camera that sends no SPS before SPSWait gets
// the fallback 42e01f announced, with the reason logged. When its stream
// then turns out to be high profile, /status shows the mismatch and the
// link ends the session the orderly way (session_stop, TERM_BY_CLIENT);
// the next session announces the stream's profile-level-id, which the fake
// finds matching.
func TestVideoCheckFallback(t *testing.T) {
	cam := heldCamera{H264: x264Clip(t, "-profile:v", "high", "-bf", "0", "-g", "15", "-pix_fmt", "yuv420p"), release: make(chan struct{})}
	e, logs := videoEnv(t, cam)
	opts := fastOpts
	opts.SPSWait = 50 * time.Millisecond
	cfg := e.cfg
	cfg.Record.Start = "manual"
	link, err := rtm.New(cfg, e.deps, opts)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := link.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if !strings.Contains(lastSession(t, e).VideoFmtp, "profile-level-id="+rtm.FallbackProfileLevelID) {
		t.Errorf("offer fmtp %q, want the fallback %s", lastSession(t, e).VideoFmtp, rtm.FallbackProfileLevelID)
	}
	if strings.Count(logs.String(), "no SPS from the video sensor in time") != 1 {
		t.Errorf("the fallback's reason is not logged:\n%s", logs.String())
	}

	close(cam.release)
	served := make(chan error, 1)
	go func() { served <- sess.Serve(t.Context()) }()
	var serveErr error
	agenttest.Eventually(t, "the session ended by the mismatch", func() bool {
		select {
		case serveErr = <-served:
			return true
		default:
			return false
		}
	})
	if !errors.Is(serveErr, rtm.ErrNotAnnounced) || !strings.Contains(serveErr.Error(), "(high ") {
		t.Errorf("Serve: %v, want ErrNotAnnounced naming the high profile", serveErr)
	}
	if p := e.stats.Details()[rtm.DetailVideoProblems]; !strings.Contains(p, "announced profile-level-id 42e01f") {
		t.Errorf("/status video_problems %q, want the mismatch", p)
	}
	sess.Close()
	if s := lastSession(t, e); s.Cause != rtm.CauseTermByClient {
		t.Errorf("first session ended with %q, want TERM_BY_CLIENT (session_stop sent)", s.Cause)
	}

	// The next session announces what the stream is.
	sess2, err := link.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess2.Close()
	agenttest.Eventually(t, "the stream's SPS at the second session", func() bool { return lastSession(t, e).StreamProfileLevelID != "" })
	s := lastSession(t, e)
	if !strings.Contains(s.VideoFmtp, "profile-level-id="+s.StreamProfileLevelID) || !strings.HasPrefix(s.StreamProfileLevelID, "64") {
		t.Errorf("second session: offer fmtp %q, stream %s; want the stream's high profile announced", s.VideoFmtp, s.StreamProfileLevelID)
	}
	if len(s.MediaErrors) != 0 {
		t.Errorf("second session: the fake found %q", s.MediaErrors)
	}
	if got := e.stats.Details()[rtm.DetailVideoProfileLevelID]; got != s.StreamProfileLevelID {
		t.Errorf("/status video_profile_level_id %q, want %s", got, s.StreamProfileLevelID)
	}
	if n := strings.Count(logs.String(), "msg=\"rtm video is not what the session announced"); n != 1 {
		t.Errorf("%d mismatch warnings, want 1:\n%s", n, logs.String())
	}
}

// TestVideoCheckProfileNoBrowserTakes: a 4:4:4 stream (libx264 with
// yuv444p: high 4:4:4 predictive) is announced as what it is; the fake,
// like a browser, takes no such H.264 and ends the session with SDP_ERROR,
// and the link says which profile it announced, with the problem in
// /status.
func TestVideoCheckProfileNoBrowserTakes(t *testing.T) {
	e, logs := videoEnv(t, x264Clip(t, "-bf", "0", "-g", "15", "-pix_fmt", "yuv444p"))
	_, err := manualLink(t, e).Dial(t.Context())
	var te *rtm.TerminatedError
	if !errors.As(err, &te) || te.Cause != rtm.CauseSDPError {
		t.Fatalf("dial: %v, want SDP_ERROR", err)
	}
	s := lastSession(t, e)
	if !strings.Contains(s.VideoFmtp, "profile-level-id=f4") || len(s.MediaErrors) != 1 ||
		!strings.Contains(s.MediaErrors[0], "no H.264 format a browser decodes") {
		t.Errorf("fake: offer fmtp %q, errors %q; want f4xxxx refused", s.VideoFmtp, s.MediaErrors)
	}
	if !strings.Contains(e.stats.Details()[rtm.DetailVideoProblems], "profile high 4:4:4 predictive") {
		t.Errorf("/status video_problems %q, want the profile named", e.stats.Details()[rtm.DetailVideoProblems])
	}
	if !strings.Contains(logs.String(), `rejected the SDP`) || !strings.Contains(logs.String(), `h264="high 4:4:4 predictive`) {
		t.Errorf("the SDP error does not name the announced profile:\n%s", logs.String())
	}
}
