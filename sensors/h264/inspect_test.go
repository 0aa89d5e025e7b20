package h264_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"slices"
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
	if len(r.Problems) != 1 || r.Problems[0].Kind != h264.ProblemKeyframeGap || !strings.Contains(r.Problems[0].Text, "keyframes 1.0s apart") {
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
		kinds   []h264.ProblemKind
	}{
		{"baseline", 15, []string{"-profile:v", "baseline", "-g", "15", "-pix_fmt", "yuv420p"}, "constrained baseline", nil, nil},
		{"high without B-frames", 15, []string{"-profile:v", "high", "-bf", "0", "-g", "15", "-pix_fmt", "yuv420p"}, "high", nil, nil},
		{"high with B-frames", 15, []string{"-profile:v", "high", "-bf", "2", "-g", "15", "-pix_fmt", "yuv420p"}, "high", []string{"B-frames"}, []h264.ProblemKind{h264.ProblemBFrames}},
		{"long GOP", 15, []string{"-profile:v", "main", "-bf", "0", "-g", "60", "-x264-params", "scenecut=0", "-pix_fmt", "yuv420p"}, "main", []string{"keyframes 2.9s apart"}, []h264.ProblemKind{h264.ProblemKeyframeGap}},
		{"4:4:4", 15, []string{"-bf", "0", "-g", "15", "-pix_fmt", "yuv444p"}, "high 4:4:4 predictive", []string{"profile high 4:4:4 predictive"}, []h264.ProblemKind{h264.ProblemProfile}},
		{"level too low", 30, []string{"-profile:v", "baseline", "-level", "1.1", "-g", "15", "-pix_fmt", "yuv420p"}, "constrained baseline", []string{"level 1.1 is too low for 320x240 at 30 fps (needs 1.3)"}, []h264.ProblemKind{h264.ProblemLevel}},
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
				if !strings.Contains(r.Problems[i].Text, w) || r.Problems[i].Kind != c.kinds[i] {
					t.Errorf("problem %s %q, want %s containing %q", r.Problems[i].Kind, r.Problems[i].Text, c.kinds[i], w)
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
	// Still no SPS after a whole keyframe interval.
	in.Add([]byte{0, 0, 0, 1, 0x41, 0x9a, 0x02}, t0.Add(3*time.Second))
	r := in.Report()
	if r.Frames != 3 || r.HaveSPS {
		t.Fatalf("report %+v, want 3 frames and no usable SPS", r)
	}
	var kinds []h264.ProblemKind
	var texts []string
	for _, p := range r.Problems {
		kinds, texts = append(kinds, p.Kind), append(texts, p.Text)
	}
	joined := strings.Join(texts, "\n")
	if !strings.Contains(joined, "malformed SPS") || !strings.Contains(joined, "no SPS in 3.0s") {
		t.Errorf("problems %q, want the malformed SPS and the missing SPS named", r.Problems)
	}
	if !slices.Equal(kinds, []h264.ProblemKind{h264.ProblemBadSPS, h264.ProblemNoSPS, h264.ProblemKeyframeGap, h264.ProblemNoParams}) {
		t.Errorf("kinds %v, want bad-sps, no-sps, keyframe-gap, no-params (two IDRs without a PPS)", kinds)
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

// TestInspectJoinMidStream: a reader that starts between keyframes sees
// frames before the first SPS; that is no problem while the next keyframe
// comes within the limit.
func TestInspectJoinMidStream(t *testing.T) {
	units, err := h264.SplitAll(testdata(t, "testsrc-320x240-15fps-4s.h264"))
	if err != nil {
		t.Fatal(err)
	}
	in := h264.NewInspector(0)
	t0 := time.Unix(1_700_000_000, 0)
	for i, u := range units[5:] {
		in.Add(u.Data, t0.Add(time.Duration(i)*time.Second/15))
		if r := in.Report(); len(r.Problems) != 0 {
			t.Fatalf("after %d frames: problems %q, want none", i+1, r.Problems)
		}
	}
}

// TestInspectNoKeyframe: a stream that never sends a keyframe is reported
// once it has run longer than the limit (the gap counted from its first
// frame), not only after a first keyframe.
func TestInspectNoKeyframe(t *testing.T) {
	units, err := h264.SplitAll(testdata(t, "testsrc-320x240-15fps-4s.h264"))
	if err != nil {
		t.Fatal(err)
	}
	in := h264.NewInspector(time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	n := 0
	for _, u := range units {
		if u.Keyframe {
			continue
		}
		in.Add(u.Data, t0.Add(time.Duration(n)*time.Second/15))
		n++
	}
	r := in.Report()
	if r.KeyframeGap < 3*time.Second {
		t.Errorf("keyframe gap %v over %d frames without a keyframe, want their span (> 3s)", r.KeyframeGap, n)
	}
	if !slices.ContainsFunc(r.Problems, func(p h264.Problem) bool { return p.Kind == h264.ProblemKeyframeGap }) {
		t.Errorf("problems %q, want the keyframe gap", r.Problems)
	}
}

// TestInspectMeasuredRateJitter: 1280x720 at 30 fps is exactly what level
// 3.1 allows; a measured rate a little over 30 (capture-time jitter) must
// not make it "too low".
func TestInspectMeasuredRateJitter(t *testing.T) {
	// level 3.1 constrained baseline, 1280x720, no VUI (so only the
	// measured rate counts), as an encoder with default settings writes it.
	sps := spsNAL(t, 66, 0xc0, 31, 1280, 720)
	in := h264.NewInspector(0)
	t0 := time.Unix(1_700_000_000, 0)
	idr := []byte{0, 0, 0, 1, 0x65, 0x88, 0x84}
	for i := range 31 {
		au := idr
		if i%30 == 0 {
			au = append(append([]byte{0, 0, 0, 1}, sps...), append([]byte{0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80}, idr...)...)
		}
		// 30 frames in 0.998 s: 30.06 fps measured.
		in.Add(au, t0.Add(time.Duration(i)*998*time.Millisecond/30))
	}
	r := in.Report()
	if r.SPS.Width != 1280 || r.SPS.Height != 720 || r.FPS <= 30 {
		t.Fatalf("SPS %+v fps %.3f, want 1280x720 measured over 30", r.SPS, r.FPS)
	}
	for _, p := range r.Problems {
		if p.Kind == h264.ProblemLevel {
			t.Errorf("level problem at %.3f fps: %s", r.FPS, p.Text)
		}
	}
}

// spsNAL writes a minimal SPS (profile_idc < 100, POC type 2, no VUI) for
// width×height in macroblocks.
func spsNAL(t *testing.T, profile, constraints, level byte, width, height int) []byte {
	t.Helper()
	var bits []byte
	put := func(v uint, n int) {
		for i := n - 1; i >= 0; i-- {
			bits = append(bits, byte(v>>i&1))
		}
	}
	ue := func(v uint) {
		v++
		n := 0
		for x := v; x > 1; x >>= 1 {
			n++
		}
		put(0, n)
		put(v, n+1)
	}
	ue(0)                  // seq_parameter_set_id
	ue(0)                  // log2_max_frame_num_minus4
	ue(2)                  // pic_order_cnt_type
	ue(1)                  // max_num_ref_frames
	put(0, 1)              // gaps_in_frame_num_value_allowed_flag
	ue(uint(width/16 - 1)) // pic_width_in_mbs_minus1
	ue(uint(height/16 - 1))
	put(1, 1) // frame_mbs_only_flag
	put(1, 1) // direct_8x8_inference_flag
	put(0, 1) // frame_cropping_flag
	put(0, 1) // vui_parameters_present_flag
	put(1, 1) // rbsp_stop_one_bit
	for len(bits)%8 != 0 {
		bits = append(bits, 0)
	}
	out := []byte{0x67, profile, constraints, level}
	for i := 0; i < len(bits); i += 8 {
		var b byte
		for _, x := range bits[i : i+8] {
			b = b<<1 | x
		}
		out = append(out, b)
	}
	if _, err := h264.ParseSPS(out); err != nil {
		t.Fatalf("test SPS: %v", err)
	}
	return out
}

func TestProfileLevelID(t *testing.T) {
	tests := []struct {
		id, profile, level string
	}{
		{"42e01f", "constrained baseline", "3.1"},
		{"42c00c", "constrained baseline", "1.2"},
		{"42001f", "baseline", "3.1"},
		{"4d0028", "main", "4"},
		{"4d400b", "main", "1.1"},
		{"58c01e", "constrained baseline", "3"},
		{"640c1f", "constrained high", "3.1"},
		{"64001f", "high", "3.1"},
		{"f4001f", "high 4:4:4 predictive", "3.1"},
		{"42f00b", "constrained baseline", "1b"},
	}
	for _, tc := range tests {
		s, err := h264.ParseProfileLevelID(tc.id)
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		if s.Profile() != tc.profile || s.Level() != tc.level || s.ProfileLevelID() != tc.id {
			t.Errorf("%s: %s %s (%s), want %s %s", tc.id, s.Profile(), s.Level(), s.ProfileLevelID(), tc.profile, tc.level)
		}
	}
	for _, bad := range []string{"", "42e0", "42e01fff", "zz0000"} {
		if _, err := h264.ParseProfileLevelID(bad); err == nil {
			t.Errorf("ParseProfileLevelID(%q) accepted", bad)
		}
	}
}

// BenchmarkInspect is the Inspector's cost per access unit on the
// repository's clip (320x240, one SPS per keyframe, repeated): what a link
// pays per published frame.
func BenchmarkInspect(b *testing.B) {
	units, err := h264.SplitAll(testdata(b, "testsrc-320x240-15fps-4s.h264"))
	if err != nil {
		b.Fatal(err)
	}
	in := h264.NewInspector(0)
	t0 := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		in.Add(units[i%len(units)].Data, t0.Add(time.Duration(i)*time.Second/15))
	}
}
