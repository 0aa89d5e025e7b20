package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/sensors/h264"
	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
)

// writeConfig writes a config with the given sensors: block and returns its path.
func writeConfig(t *testing.T, sensorsYAML string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	body := "state_dir: " + t.TempDir() + "\nstatus: { listen: \"\" }\nsensors:\n" + sensorsYAML
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runSample(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = dispatch(ctx, append([]string{"sample"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s is not valid CSV: %v", path, err)
	}
	return rows
}

// TestSampleMotionRowCount is the done-when: on a synthetic motion sensor the
// CSV has rate × seconds rows within 2 %.
func TestSampleMotionRowCount(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name    string
		rate    float64
		seconds float64
		axes    int
	}{
		{name: "100 Hz 1.5 s", rate: 100, seconds: 1.5, axes: 3},
		{name: "62.5 Hz 1 s", rate: 62.5, seconds: 1, axes: 3},
		{name: "400 Hz 0.5 s two axes", rate: 400, seconds: 0.5, axes: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, "  - name: accel\n    kind: synthetic\n    synthetic: { signal: motion, axes: "+
				strconv.Itoa(tc.axes)+", frequencies: ["+strconv.FormatFloat(tc.rate, 'g', -1, 64)+"] }\n")
			out := filepath.Join(t.TempDir(), "accel.csv")
			code, stdout, stderr := runSample(t, context.Background(), "-config", cfg, "-sensor", "accel",
				"-seconds", strconv.FormatFloat(tc.seconds, 'g', -1, 64), "-o", out)
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			rows := readCSV(t, out)
			if want := 1 + tc.axes; len(rows[0]) != want || rows[0][0] != "timestamp" {
				t.Fatalf("header %v", rows[0])
			}
			want := tc.rate * tc.seconds
			got := float64(len(rows) - 1)
			if math.Abs(got-want) > 0.02*want {
				t.Fatalf("%v rows, want %v ± 2%%", got, want)
			}
			// Timestamps rise by one period.
			t1, _ := strconv.ParseFloat(rows[2][0], 64)
			if math.Abs(t1-1000/tc.rate) > 0.01 {
				t.Errorf("second timestamp %v ms, want %v", t1, 1000/tc.rate)
			}
			if !strings.Contains(stdout, "rows") {
				t.Errorf("stdout %q does not report the rows", stdout)
			}
		})
	}
}

// TestSampleIIOFakeSysfs runs the real iio driver against a minimal fake
// sysfs tree in poll mode.
func TestSampleIIOFakeSysfs(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	root := t.TempDir()
	sys := filepath.Join(root, "sys")
	dev := filepath.Join(root, "dev")
	real := filepath.Join(sys, "devices", "platform", "i2c-1", "1-0053", "iio:device0")
	files := map[string]string{
		"name": "adxl345", "in_accel_x_raw": "10", "in_accel_y_raw": "-20", "in_accel_z_raw": "256",
		"in_accel_scale": "0.038307", "sampling_frequency": "100", "sampling_frequency_available": "12.5 25 50 100 200 400",
	}
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, v := range files {
		if err := os.WriteFile(filepath.Join(real, n), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Join(sys, "bus", "iio", "devices"), dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(real, filepath.Join(sys, "bus", "iio", "devices", "iio:device0")); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "  - name: accel\n    kind: iio\n    iio: { device: adxl345, frequencies: [100], mode: poll }\n")
	out := filepath.Join(t.TempDir(), "accel.csv")
	code, stdout, stderr := runSample(t, context.Background(), "-config", cfg, "-sensor", "accel", "-seconds", "1",
		"-o", out, "-sys-root", sys, "-dev-root", dev)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	rows := readCSV(t, out)
	// The poller skips ticks it could not read on time (a loaded machine,
	// -race) and reports them as lost; rows plus those must match.
	lost := 0.0
	if _, after, ok := strings.Cut(stdout, "rows ("); ok {
		n, _ := strconv.Atoi(strings.Fields(after)[0])
		lost = float64(n)
		t.Logf("driver reported %v ticks lost: %s", lost, stdout)
	}
	if got := float64(len(rows) - 1); math.Abs(got+lost-100) > 2 {
		t.Fatalf("%v rows + %v lost, want 100 ± 2%%\n%s", got, lost, stdout)
	}
	z, err := strconv.ParseFloat(rows[1][3], 64)
	if err != nil || math.Abs(z-256*0.038307) > 1e-6 {
		t.Errorf("z = %v (%v), want %v m/s²", rows[1][3], err, 256*0.038307)
	}
}

func TestSampleAudioWAV(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := writeConfig(t, "  - name: mic\n    kind: synthetic\n    synthetic: { signal: audio, sample_rate: 16000 }\n")
	out := filepath.Join(t.TempDir(), "mic.wav")
	code, stdout, stderr := runSample(t, context.Background(), "-config", cfg, "-sensor", "mic", "-seconds", "0.5", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[0:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || string(b[36:40]) != "data" {
		t.Fatalf("not a WAV header: %q", b[:44])
	}
	if rate := binary.LittleEndian.Uint32(b[24:]); rate != 16000 {
		t.Errorf("rate %d", rate)
	}
	data := binary.LittleEndian.Uint32(b[40:])
	if data != 8000*2 || int(data) != len(b)-44 || binary.LittleEndian.Uint32(b[4:]) != 36+data {
		t.Errorf("data size %d, file %d bytes; want 16000 bytes of PCM", data, len(b))
	}
}

// TestSampleCommandPCM runs a command sensor (a script standing in for
// arecord) through the agent's factory into a WAV file.
func TestSampleCommandPCM(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	script := filepath.Join(dir, "arecord.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nhead -c 64000 /dev/zero\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "  - name: mic\n    kind: command\n    command: { argv: ["+script+"], output: pcm, rate: 16000 }\n")
	out := filepath.Join(dir, "mic.wav")
	code, stdout, stderr := runSample(t, context.Background(), "-config", cfg, "-sensor", "mic", "-seconds", "1.5", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Size() != 44+24000*2 {
		t.Fatalf("WAV is %v bytes (%v), want 44 + 48000", fi.Size(), err)
	}
}

func TestSampleCamera(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := writeConfig(t, "  - name: cam\n    kind: synthetic\n    synthetic: { signal: camera, fps: 20, width: 160, height: 120 }\n"+
		"  - name: video\n    kind: synthetic\n    synthetic: { signal: h264, fps: 15 }\n")
	dir := t.TempDir()
	t.Run("one still", func(t *testing.T) {
		out := filepath.Join(dir, "still.jpg")
		if code, so, se := runSample(t, context.Background(), "-config", cfg, "-sensor", "cam", "-seconds", "0", "-o", out); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, so, se)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		c, err := jpeg.DecodeConfig(bytes.NewReader(b))
		if err != nil || c.Width != 160 || c.Height != 120 {
			t.Fatalf("still: %v %+v", err, c)
		}
	})
	t.Run("camera default is one still", func(t *testing.T) {
		out := filepath.Join(dir, "default.jpg")
		code, so, se := runSample(t, context.Background(), "-config", cfg, "-sensor", "cam", "-o", out)
		if code != 0 || !strings.Contains(so, "1 still") {
			t.Fatalf("exit %d\n%s\n%s", code, so, se)
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "default-*.jpg")); len(files) != 0 {
			t.Fatalf("numbered files written: %v", files)
		}
	})
	t.Run("mjpeg stream", func(t *testing.T) {
		out := filepath.Join(dir, "cam.mjpeg")
		if code, so, se := runSample(t, context.Background(), "-config", cfg, "-sensor", "cam", "-seconds", "1", "-o", out); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, so, se)
		}
		b, _ := os.ReadFile(out)
		sp := mjpeg.NewSplitter(bytes.NewReader(b))
		n := 0
		for {
			if _, err := sp.Next(); err != nil {
				break
			}
			n++
		}
		if n < 19 || n > 21 {
			t.Fatalf("%d frames in 1 s at 20 fps", n)
		}
	})
	t.Run("numbered stills", func(t *testing.T) {
		out := filepath.Join(dir, "shot.jpg")
		if code, so, se := runSample(t, context.Background(), "-config", cfg, "-sensor", "cam", "-seconds", "0.25", "-o", out); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, so, se)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "shot-*.jpg"))
		if len(files) != 5 {
			t.Fatalf("%d numbered stills, want 5: %v", len(files), files)
		}
	})
	t.Run("h264", func(t *testing.T) {
		out := filepath.Join(dir, "video.h264")
		if code, so, se := runSample(t, context.Background(), "-config", cfg, "-sensor", "video", "-seconds", "1", "-o", out); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, so, se)
		}
		b, _ := os.ReadFile(out)
		aus, err := h264.SplitAll(b)
		if err != nil || len(aus) < 14 || len(aus) > 16 {
			t.Fatalf("%d access units (err %v), want 15", len(aus), err)
		}
		if !aus[0].Keyframe {
			t.Fatal("file does not start with a keyframe")
		}
	})
}

// TestSampleInterrupt: SIGINT (ctx) ends the capture early with exit 130 and
// leaves a complete CSV of what was captured.
func TestSampleInterrupt(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := writeConfig(t, "  - name: accel\n    kind: synthetic\n    synthetic: { signal: motion, frequencies: [100] }\n")
	out := filepath.Join(t.TempDir(), "accel.csv")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var o, e bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, []string{"sample", "-config", cfg, "-sensor", "accel", "-seconds", "60", "-o", out}, &o, &e)
	}()
	// Wait until the capture runs, then interrupt.
	for {
		if _, err := os.Stat(out); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	if code := <-done; code != sampleInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, sampleInterrupted, e.String())
	}
	rows := readCSV(t, out)
	if len(rows) < 2 {
		t.Fatalf("only %d lines after the interrupt", len(rows))
	}
	for i, r := range rows[1:] {
		if len(r) != 4 {
			t.Fatalf("row %d is cut: %v", i, r)
		}
	}
}

func TestSampleErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := writeConfig(t, "  - name: accel\n    kind: synthetic\n    synthetic: { signal: motion }\n"+
		"  - name: cam\n    kind: v4l2\n    v4l2: { device: /dev/video99 }\n")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{name: "no sensor flag", args: []string{"-config", cfg}, code: 2, msg: "usage"},
		{name: "bad flag", args: []string{"-bogus"}, code: 2, msg: "bogus"},
		{name: "negative seconds", args: []string{"-config", cfg, "-sensor", "accel", "-seconds", "-1"}, code: 2, msg: "-seconds"},
		{name: "unknown sensor", args: []string{"-config", cfg, "-sensor", "nope"}, code: 1, msg: "configured: accel, cam"},
		{name: "missing config", args: []string{"-config", "/nonexistent.yaml", "-sensor", "accel"}, code: 1, msg: "nonexistent"},
		{name: "motion needs seconds", args: []string{"-config", cfg, "-sensor", "accel", "-seconds", "0", "-o", filepath.Join(t.TempDir(), "x.csv")},
			code: 1, msg: "seconds > 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runSample(t, context.Background(), tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.msg)
			}
		})
	}
}

// TestSampleFailingSensorTimesOut: a camera that cannot be opened is retried
// by the hub; capture gives up at the time limit with the sensor's error.
func TestSampleFailingSensorTimesOut(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	src, err := newSyntheticFailing()
	if err != nil {
		t.Fatal(err)
	}
	res, err := runCapture(context.Background(), src, captureOptions{window: time.Second, path: filepath.Join(dir, "x.jpg"),
		progress: &bytes.Buffer{}, limit: 300 * time.Millisecond, log: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "last sensor error") || !strings.Contains(err.Error(), "fake camera failure") {
		t.Fatalf("err = %v", err)
	}
	if res.covered != 0 {
		t.Errorf("covered %v", res.covered)
	}
}

func TestPlainProgressLines(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "accel", 3*time.Second)
	for ms := 0; ms <= 3000; ms += 10 {
		p.update(time.Duration(ms)*time.Millisecond, "rows")
	}
	p.finish()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "sample accel: 1/3 s") {
		t.Fatalf("progress lines %q", lines)
	}
}
