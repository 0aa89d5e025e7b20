package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/reexec"
	commandsensor "github.com/edge-agent/edge-agent/sensors/command"
	"github.com/edge-agent/edge-agent/sensors/h264"
)

// examples are the example configs deploy/README.md points at, one per
// board and camera (deploy/examples/*.yaml).
func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(repoPath("deploy/examples/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("deploy/examples has %d configs, want the five of deploy/README.md: %v", len(files), files)
	}
	return files
}

// TestExamplesPassCheckConfig runs the real `edge-agent check-config` (this
// test binary as edge-agent) on every example: exit 0, no warning.
func TestExamplesPassCheckConfig(t *testing.T) {
	for _, f := range examples(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cmd := reexec.Command("check-config", f)
			cmd.Env = append(os.Environ(), "EDGE_AGENT_MAIN=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("check-config %s: %v\n%s", f, err, out)
			}
			if !strings.Contains(string(out), ": ok (") || strings.Contains(string(out), "warning") {
				t.Errorf("check-config %s:\n%s", f, out)
			}
		})
	}
}

// TestExampleSoftwareEncodersMakeBrowserH264 runs each example's ffmpeg
// command that encodes with libx264 (the Pi 5's USB camera) on this
// machine, with a test pattern of the sensor's size and rate in place of
// the camera, and checks the stream with the inspector the RTM link uses:
// no B-frames, a profile browsers decode, a level that fits, a keyframe
// within 2 s, and SPS/PPS from the encoder itself before every keyframe.
// (rpicam-vid and the hardware encoder need a Pi; deploy/README.md marks
// what was not run on one.)
func TestExampleSoftwareEncodersMakeBrowserH264(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	ran := 0
	for _, f := range examples(t) {
		cfg, err := config.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cfg.Sensors {
			c, ok := s.Block.(*commandsensor.Config)
			if !ok || c.Output != "h264" || filepath.Base(c.Argv[0]) != "ffmpeg" || !slices.Contains(c.Argv, "libx264") {
				continue
			}
			ran++
			t.Run(filepath.Base(f)+"/"+s.Name, func(t *testing.T) {
				argv, err := withTestPattern(c.Argv[1:], c.Width, c.Height, c.Rate, 4)
				if err != nil {
					t.Fatal(err)
				}
				var stderr bytes.Buffer
				cmd := exec.Command(ffmpeg, argv...)
				cmd.Stderr = &stderr
				raw, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s %q: %v\n%s", ffmpeg, argv, err, stderr.String())
				}
				checkBrowserH264(t, raw, c.Rate)
			})
		}
	}
	if ran == 0 {
		t.Fatal("no example encodes with libx264 through ffmpeg: the Pi 5 USB example is gone or changed")
	}
}

// withTestPattern replaces the camera input of an ffmpeg argv (from "-f
// v4l2" to "-i DEVICE") with a lavfi test pattern of the given size and
// rate, and limits the output to seconds.
func withTestPattern(argv []string, width, height int, rate float64, seconds int) ([]string, error) {
	from := slices.Index(argv, "v4l2") - 1
	in := slices.Index(argv, "-i")
	if from < 0 || argv[from] != "-f" || in < from || in+1 >= len(argv) || argv[len(argv)-1] != "-" {
		return nil, fmt.Errorf("argv %q: want -f v4l2 … -i DEVICE … -", argv)
	}
	out := slices.Clone(argv[:from])
	out = append(out, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%g", width, height, rate))
	out = append(out, argv[in+2:len(argv)-1]...)
	return append(out, "-t", fmt.Sprint(seconds), "-"), nil
}

// checkBrowserH264 inspects raw (Annex-B) as the RTM link does, with the
// frames stamped at rate.
func checkBrowserH264(t *testing.T, raw []byte, rate float64) {
	t.Helper()
	sps := 0
	for _, nal := range h264.SplitNALs(raw) {
		if h264.NALType(nal) == h264.NALSPS {
			sps++
		}
	}
	in := h264.NewInspector(h264.DefaultMaxKeyframeGap)
	sp := h264.NewSplitter(bytes.NewReader(raw))
	t0 := time.Unix(0, 0)
	keyframes := 0
	for n := 0; ; n++ {
		au, err := sp.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if au.Keyframe {
			keyframes++
		}
		in.Add(au.Data, t0.Add(time.Duration(float64(n)/rate*float64(time.Second))))
	}
	r := in.Report()
	if r.Frames < 2*int(rate) || keyframes == 0 {
		t.Fatalf("%d frames, %d keyframes: too short a stream to judge", r.Frames, keyframes)
	}
	for _, p := range r.Problems {
		t.Errorf("a browser may not play it: %s", p)
	}
	if r.BFrames != 0 || !h264.BrowserProfile(r.SPS.Profile()) {
		t.Errorf("B-frames %d, profile %q", r.BFrames, r.SPS.Profile())
	}
	if sps < keyframes {
		t.Errorf("the encoder wrote %d SPS for %d keyframes: each keyframe needs its own", sps, keyframes)
	}
	t.Logf("%d frames, %d keyframes (longest gap %v), profile %s, level_idc %d", r.Frames, keyframes,
		r.KeyframeGap, r.SPS.Profile(), r.SPS.LevelIDC)
}
