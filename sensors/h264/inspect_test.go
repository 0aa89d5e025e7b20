package h264_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors/h264"
)

// inspect splits clip and feeds every access unit to an Inspector with times
// 1/fps apart.
func inspect(t *testing.T, clip []byte, fps float64, maxGap time.Duration) h264.Report {
	t.Helper()
	in := h264.NewInspector(maxGap)
	s := h264.NewSplitter(bytes.NewReader(clip))
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; ; i++ {
		au, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		in.Add(au.Data, t0.Add(time.Duration(float64(i)/fps*float64(time.Second))))
	}
	return in.Report()
}

func TestInspectRecordedClip(t *testing.T) {
	r := inspect(t, testdata(t, "testsrc-320x240-15fps-4s.h264"), 15, 0)
	if !r.HaveSPS || r.SPS.Width != 320 || r.SPS.Height != 240 {
		t.Fatalf("SPS %+v, want 320x240", r.SPS)
	}
	if p := r.SPS.Profile(); p != "constrained baseline" {
		t.Errorf("profile %q, want constrained baseline", p)
	}
	if r.SPS.ProfileLevelID()[:4] != "42c0" {
		t.Errorf("profile-level-id %s, want 42c0xx (baseline, set0+set1)", r.SPS.ProfileLevelID())
	}
	if r.Frames != 60 || r.BFrames != 0 || r.KeyframeGap != time.Second {
		t.Errorf("frames %d B %d keyframe gap %v, want 60, 0, 1s", r.Frames, r.BFrames, r.KeyframeGap)
	}
	if r.FPS < 14.9 || r.FPS > 15.1 {
		t.Errorf("fps %.2f, want 15", r.FPS)
	}
	if len(r.Problems) != 0 {
		t.Errorf("problems %q, want none", r.Problems)
	}
	// The same clip with a stricter keyframe limit is reported.
	r = inspect(t, testdata(t, "testsrc-320x240-15fps-4s.h264"), 15, 500*time.Millisecond)
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "keyframes 1.0s apart") {
		t.Errorf("problems %q, want one about the keyframe gap", r.Problems)
	}
}

// encode makes a 3 s 320x240 test clip with ffmpeg's libx264 and args.
func encode(t *testing.T, fps int, args ...string) []byte {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg; .ci/run installs it): encoded-stream cases need libx264")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := append([]string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
		"testsrc=size=320x240:rate=" + strconv.Itoa(fps), "-t", "3", "-c:v", "libx264"}, args...)
	cmd = append(cmd, "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-")
	var out, stderr bytes.Buffer
	c := exec.CommandContext(ctx, ffmpeg, cmd...)
	c.Stdout, c.Stderr = &out, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.Bytes()
}

func TestInspectEncodedStreams(t *testing.T) {
	cases := []struct {
		name    string
		fps     int
		args    []string
		profile string
		want    []string // substrings, one per expected problem, in order
	}{
		{"baseline", 15, []string{"-profile:v", "baseline", "-g", "15", "-pix_fmt", "yuv420p"}, "constrained baseline", nil},
		{"high without B-frames", 15, []string{"-profile:v", "high", "-bf", "0", "-g", "15", "-pix_fmt", "yuv420p"}, "high", nil},
		{"high with B-frames", 15, []string{"-profile:v", "high", "-bf", "2", "-g", "15", "-pix_fmt", "yuv420p"}, "high", []string{"B-frames"}},
		{"long GOP", 15, []string{"-profile:v", "main", "-bf", "0", "-g", "60", "-x264-params", "scenecut=0", "-pix_fmt", "yuv420p"}, "main", []string{"keyframes 2.9s apart"}},
		{"4:4:4", 15, []string{"-bf", "0", "-g", "15", "-pix_fmt", "yuv444p"}, "high 4:4:4 predictive", []string{"profile high 4:4:4 predictive"}},
		{"level too low", 30, []string{"-profile:v", "baseline", "-level", "1.1", "-g", "15", "-pix_fmt", "yuv420p"}, "constrained baseline", []string{"level 1.1 is too low for 320x240 at 30 fps (needs 1.3)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := inspect(t, encode(t, c.fps, c.args...), float64(c.fps), 0)
			if !r.HaveSPS || r.SPS.Width != 320 || r.SPS.Height != 240 {
				t.Fatalf("SPS %+v", r.SPS)
			}
			if got := r.SPS.Profile(); got != c.profile {
				t.Errorf("profile %q (profile-level-id %s), want %q", got, r.SPS.ProfileLevelID(), c.profile)
			}
			if len(r.Problems) != len(c.want) {
				t.Fatalf("problems %q, want %d matching %q", r.Problems, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(r.Problems[i], w) {
					t.Errorf("problem %q, want it to contain %q", r.Problems[i], w)
				}
			}
		})
	}
}

func TestInspectBrokenInput(t *testing.T) {
	in := h264.NewInspector(0)
	t0 := time.Now()
	// A slice without any SPS, then an SPS cut short.
	in.Add([]byte{0, 0, 0, 1, 0x65, 0x88, 0x84}, t0)
	in.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 1, 0x65, 0x88}, t0.Add(time.Second/15))
	r := in.Report()
	if r.Frames != 2 || r.HaveSPS {
		t.Fatalf("report %+v, want 2 frames and no usable SPS", r)
	}
	joined := strings.Join(r.Problems, "\n")
	if !strings.Contains(joined, "malformed SPS") || !strings.Contains(joined, "no SPS seen") {
		t.Errorf("problems %q, want the malformed SPS and the missing SPS named", r.Problems)
	}
	if _, err := h264.ParseSPS([]byte{0x68, 1, 2, 3}); !errors.Is(err, h264.ErrBadSPS) {
		t.Errorf("ParseSPS(PPS) = %v, want ErrBadSPS", err)
	}
}

func FuzzParseSPS(f *testing.F) {
	f.Add([]byte{0x67, 0x42, 0xc0, 0x1e, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40})
	f.Add([]byte{0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10})
	f.Fuzz(func(t *testing.T, nal []byte) {
		s, err := h264.ParseSPS(nal)
		if err == nil && (s.Width <= 0 || s.Height <= 0 || s.Width > 16384 || s.Height > 32768) {
			t.Fatalf("accepted %dx%d", s.Width, s.Height)
		}
		_ = h264.SliceType(nal)
	})
}
