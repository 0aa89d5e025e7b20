package capture_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/capture"
	"github.com/edge-agent/edge-agent/sensors"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func infoOf(in sensors.Info) func() sensors.Info { return func() sensors.Info { return in } }

func newWriter(t *testing.T, info func() sensors.Info, path string, o capture.Options) capture.Writer {
	t.Helper()
	w, err := capture.New(info, path, o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// feed adds samples until the writer says the window is complete and
// returns how many it took, the last one included.
func feed(t *testing.T, w capture.Writer, samples []sensors.Sample) int {
	t.Helper()
	for i, s := range samples {
		done, err := w.Add(s)
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		if done {
			return i + 1
		}
	}
	return len(samples)
}

func closeAndRead(t *testing.T, w capture.Writer, path string) []byte {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rows are motion samples at rate Hz from t0, Seq from 1.
func rows(n int, rate float64, values ...float64) []sensors.Sample {
	out := make([]sensors.Sample, n)
	for i := range out {
		out[i] = sensors.Sample{Class: sensors.Motion, Seq: uint64(i + 1), Values: values,
			Time: t0.Add(time.Duration(float64(i) * float64(time.Second) / rate))}
	}
	return out
}

// TestCSVWindowBySampleTimes: the window holds the rows captured less than
// its length after the first, whatever else arrives; the row past it ends
// the capture unwritten.
func TestCSVWindowBySampleTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.csv")
	w := newWriter(t, infoOf(sensors.Info{Class: sensors.Motion, Rate: 100, Axes: []string{"accX", "accY"}}), path,
		capture.Options{Length: 50 * time.Millisecond})
	if n := feed(t, w, rows(20, 100, 1.5, -2)); n != 6 {
		t.Fatalf("done after %d rows, want the 6th (5 in 50 ms at 100 Hz)", n)
	}
	if w.Covered() != 50*time.Millisecond || w.Summary() != "5 rows" || w.Frames() != nil {
		t.Errorf("covered %v, summary %q, frames %v", w.Covered(), w.Summary(), w.Frames())
	}
	want := "timestamp,accX,accY\n0.000,1.5,-2\n10.000,1.5,-2\n20.000,1.5,-2\n30.000,1.5,-2\n40.000,1.5,-2\n"
	if got := string(closeAndRead(t, w, path)); got != want {
		t.Errorf("file\n%s\nwant\n%s", got, want)
	}
}

// TestCSVHeaderFromFirstRow: the header is named from Info when the first
// row arrives (a serial board's axes come late), with axisN for values no
// axis names; a capture without rows still names its columns.
func TestCSVHeaderFromFirstRow(t *testing.T) {
	dir := t.TempDir()
	in := sensors.Info{Class: sensors.Motion}
	info := func() sensors.Info { return in }
	path := filepath.Join(dir, "board.csv")
	w := newWriter(t, info, path, capture.Options{Length: time.Second})
	in.Axes, in.Rate = []string{"x", ""}, 50 // detected after New
	feed(t, w, rows(2, 50, 1, 2, 3))
	if got := string(closeAndRead(t, w, path)); !strings.HasPrefix(got, "timestamp,x,axis1,axis2\n0.000,1,2,3\n20.000,") {
		t.Errorf("file\n%s", got)
	}
	if w.Covered() != 40*time.Millisecond {
		t.Errorf("covered %v, want 40ms (two rows of 20 ms)", w.Covered())
	}

	path = filepath.Join(dir, "empty.csv")
	w = newWriter(t, info, path, capture.Options{Length: time.Second})
	if got := string(closeAndRead(t, w, path)); got != "timestamp,x,axis1\n" {
		t.Errorf("no rows: %q", got)
	}
}

// TestCSVReportsLostRows: a jump in Seq is what the driver lost, and the
// summary says so.
func TestCSVReportsLostRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.csv")
	w := newWriter(t, infoOf(sensors.Info{Class: sensors.Motion, Rate: 100}), path, capture.Options{Length: time.Second})
	s := rows(10, 100, 0)
	for i := 4; i < len(s); i++ {
		s[i].Seq += 3
	}
	feed(t, w, s)
	if got := w.Summary(); got != "10 rows (3 more the sensor driver reported lost)" {
		t.Errorf("summary %q", got)
	}
	_ = w.Close()
}

// TestWAV: the window is counted in frames; a block that overshoots is cut
// at it and a partial frame dropped; the header's sizes match the data.
func TestWAV(t *testing.T) {
	dir := t.TempDir()
	info := infoOf(sensors.Info{Name: "mic", Class: sensors.Audio, Rate: 1000, Channels: 2})
	block := func(b byte) sensors.Sample {
		return sensors.Sample{Class: sensors.Audio, Time: t0, Data: append(bytes.Repeat([]byte{b}, 7*4), 0xee)}
	}
	path := filepath.Join(dir, "mic.wav")
	w := newWriter(t, info, path, capture.Options{Length: 10 * time.Millisecond})
	if n := feed(t, w, []sensors.Sample{block(1), block(2), block(3)}); n != 2 {
		t.Fatalf("done after %d blocks of 7 frames, want 2 (10 frames)", n)
	}
	if w.Covered() != 10*time.Millisecond || w.Summary() != "10 frames at 1000 Hz" {
		t.Errorf("covered %v, summary %q", w.Covered(), w.Summary())
	}
	b := closeAndRead(t, w, path)
	checkWAV(t, b, 1000, 2, 40)
	if want := append(bytes.Repeat([]byte{1}, 28), bytes.Repeat([]byte{2}, 12)...); !bytes.Equal(b[44:], want) {
		t.Errorf("data % x", b[44:])
	}

	// Closed early (an interrupt), the file is still a valid WAV.
	path = filepath.Join(dir, "short.wav")
	w = newWriter(t, info, path, capture.Options{Length: time.Second})
	feed(t, w, []sensors.Sample{block(1)})
	checkWAV(t, closeAndRead(t, w, path), 1000, 2, 28)
}

func checkWAV(t *testing.T, b []byte, rate, channels, data int) {
	t.Helper()
	le := binary.LittleEndian
	if len(b) != 44+data || string(b[:4]) != "RIFF" || le.Uint32(b[4:]) != uint32(36+data) || string(b[8:16]) != "WAVEfmt " ||
		le.Uint16(b[20:]) != 1 || le.Uint16(b[22:]) != uint16(channels) || le.Uint32(b[24:]) != uint32(rate) ||
		le.Uint32(b[28:]) != uint32(rate*channels*2) || le.Uint16(b[32:]) != uint16(channels*2) || le.Uint16(b[34:]) != 16 ||
		string(b[36:40]) != "data" || le.Uint32(b[40:]) != uint32(data) {
		t.Errorf("%d bytes, header % x; want %d Hz, %d channels, %d bytes of data", len(b), b[:min(44, len(b))], rate, channels, data)
	}
}

// stills are JPEG-like payloads of different lengths at fps from t0.
func stills(n int, fps float64) []sensors.Sample {
	out := make([]sensors.Sample, n)
	for i := range out {
		d := time.Duration(float64(time.Second) / fps)
		out[i] = sensors.Sample{Class: sensors.Still, Time: t0.Add(time.Duration(i) * d), Duration: d,
			Data: append([]byte{0xff, 0xd8, 0xff}, bytes.Repeat([]byte{byte(i)}, 10+i)...)}
	}
	return out
}

// TestStillStream: a window's stills back to back, with where each starts;
// one still for a zero length.
func TestStillStream(t *testing.T) {
	dir := t.TempDir()
	info := infoOf(sensors.Info{Class: sensors.Still, Rate: 10})
	in := stills(6, 10)
	path := filepath.Join(dir, "cam.mjpeg")
	w := newWriter(t, info, path, capture.Options{Length: 250 * time.Millisecond})
	if n := feed(t, w, in); n != 4 {
		t.Fatalf("done after %d stills, want the 4th (3 in 250 ms at 10 fps)", n)
	}
	if w.Summary() != "3 stills" || w.Covered() != 250*time.Millisecond {
		t.Errorf("summary %q, covered %v", w.Summary(), w.Covered())
	}
	if want := []int64{0, 13, 27, 42}; !reflect.DeepEqual(w.Frames(), want) {
		t.Errorf("frames %v, want %v", w.Frames(), want)
	}
	if got, want := closeAndRead(t, w, path), bytes.Join([][]byte{in[0].Data, in[1].Data, in[2].Data}, nil); !bytes.Equal(got, want) {
		t.Errorf("stream % x", got)
	}

	path = filepath.Join(dir, "still.jpg")
	w = newWriter(t, info, path, capture.Options{})
	if w.Summary() != "no still" {
		t.Errorf("before a still: %q", w.Summary())
	}
	if n := feed(t, w, in[2:]); n != 1 || w.Summary() != "1 still" || w.Covered() != 0 || !reflect.DeepEqual(w.Frames(), []int64{0, 15}) {
		t.Errorf("one still: done after %d, %q, covered %v, frames %v", n, w.Summary(), w.Covered(), w.Frames())
	}
	if got := closeAndRead(t, w, path); !bytes.Equal(got, in[2].Data) {
		t.Errorf("still % x", got)
	}
}

// TestNumberedStills: a file per still, made when it arrives.
func TestNumberedStills(t *testing.T) {
	dir := t.TempDir()
	info := infoOf(sensors.Info{Class: sensors.Still, Rate: 10})
	in := stills(6, 10)
	path := filepath.Join(dir, "shot.jpg")
	w := newWriter(t, info, path, capture.Options{Length: 250 * time.Millisecond, Numbered: true})
	feed(t, w, in)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Summary() != "3 stills (shot-0001.jpg … shot-0003.jpg)" || w.Frames() != nil {
		t.Errorf("summary %q, frames %v", w.Summary(), w.Frames())
	}
	for i := range 3 {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("shot-%04d.jpg", i+1)))
		if err != nil || !bytes.Equal(b, in[i].Data) {
			t.Errorf("still %d: % x (%v)", i+1, b, err)
		}
	}

	path = filepath.Join(dir, "one.jpg")
	w = newWriter(t, info, path, capture.Options{Numbered: true})
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) || w.Summary() != "no stills" {
		t.Errorf("a file before the still (%v), summary %q", err, w.Summary())
	}
	if n := feed(t, w, in[1:]); n != 1 || w.Summary() != "1 still" {
		t.Errorf("done after %d, summary %q", n, w.Summary())
	}
	if got := closeAndRead(t, w, path); !bytes.Equal(got, in[1].Data) {
		t.Errorf("still % x", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("%d files, want the 3 numbered and one.jpg", len(ents))
	}
}

// TestH264FromKeyframe: access units before the first keyframe are
// dropped, and the window starts at it.
func TestH264FromKeyframe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.h264")
	w := newWriter(t, infoOf(sensors.Info{Class: sensors.Video, Rate: 10}), path, capture.Options{Length: 200 * time.Millisecond})
	var in []sensors.Sample
	for i := range 8 {
		in = append(in, sensors.Sample{Class: sensors.Video, Time: t0.Add(time.Duration(i) * 100 * time.Millisecond),
			Duration: 100 * time.Millisecond, Keyframe: i == 2, Data: []byte{0, 0, 0, 1, byte(i)}})
	}
	if n := feed(t, w, in); n != 5 {
		t.Fatalf("done after %d access units, want the 5th (2 skipped, 2 in 200 ms)", n)
	}
	if w.Summary() != "2 access units" || w.Covered() != 200*time.Millisecond {
		t.Errorf("summary %q, covered %v", w.Summary(), w.Covered())
	}
	if got := closeAndRead(t, w, path); !bytes.Equal(got, []byte{0, 0, 0, 1, 2, 0, 0, 0, 1, 3}) {
		t.Errorf("stream % x", got)
	}
}

// TestNewRefuses: what cannot be captured fails before any file is made;
// Create makes the files and its error comes back as it is.
func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		info   sensors.Info
		length time.Duration
		msg    string
	}{
		{"motion without a length", sensors.Info{Class: sensors.Motion, Rate: 100}, 0, "a motion capture needs a length above 0"},
		{"audio without a rate", sensors.Info{Name: "mic", Class: sensors.Audio}, time.Second, `audio sensor "mic" reports no sample rate`},
		{"no class", sensors.Info{Name: "x"}, time.Second, `sensor "x" has class unknown, which cannot be captured`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "out")
			if _, err := capture.New(infoOf(tc.info), path, capture.Options{Length: tc.length}); err == nil || err.Error() != tc.msg {
				t.Errorf("err %v, want %q", err, tc.msg)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file was made: %v", err)
			}
		})
	}

	refused := errors.New("refused")
	var asked []string
	create := func(p string) (*os.File, error) { asked = append(asked, p); return nil, refused }
	path := filepath.Join(dir, "a.csv")
	if _, err := capture.New(infoOf(sensors.Info{Class: sensors.Motion}), path, capture.Options{Length: time.Second, Create: create}); !errors.Is(err, refused) {
		t.Errorf("err %v, want Create's", err)
	}
	w := newWriter(t, infoOf(sensors.Info{Class: sensors.Still}), filepath.Join(dir, "s.jpg"), capture.Options{Numbered: true, Create: create})
	if _, err := w.Add(stills(1, 10)[0]); !errors.Is(err, refused) {
		t.Errorf("numbered still: err %v, want Create's", err)
	}
	if want := []string{path, filepath.Join(dir, "s.jpg")}; !reflect.DeepEqual(asked, want) {
		t.Errorf("Create was asked for %v, want %v", asked, want)
	}
}

func TestFileKind(t *testing.T) {
	for _, tc := range []struct {
		class      sensors.Class
		length     time.Duration
		ext, ctype string
	}{
		{sensors.Motion, time.Second, ".csv", "text/csv; charset=utf-8"},
		{sensors.Inference, time.Second, ".csv", "text/csv; charset=utf-8"},
		{sensors.Audio, time.Second, ".wav", "audio/wav"},
		{sensors.Still, 0, ".jpg", "image/jpeg"},
		{sensors.Still, time.Second, ".mjpeg", "video/x-motion-jpeg"},
		{sensors.Video, time.Second, ".h264", "video/h264"},
		{sensors.Class(99), time.Second, ".bin", "application/octet-stream"},
	} {
		if ext, ctype := capture.FileKind(tc.class, tc.length); ext != tc.ext || ctype != tc.ctype {
			t.Errorf("%v for %v: %q %q, want %q %q", tc.class, tc.length, ext, ctype, tc.ext, tc.ctype)
		}
	}
}

func TestQueueFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   sensors.Info
		len  time.Duration
		most int
		want int
	}{
		{"the fastest motion rate", sensors.Info{Class: sensors.Motion, Rate: 100, Frequencies: []float64{50, 400}}, time.Second, 1 << 16, 440 + 64},
		{"audio in 10 ms blocks", sensors.Info{Class: sensors.Audio, Rate: 16000}, 2 * time.Second, 1 << 16, 220 + 64},
		{"a camera without a rate", sensors.Info{Class: sensors.Video}, time.Second, 1 << 16, 33 + 64},
		{"motion without a rate", sensors.Info{Class: sensors.Motion}, time.Second, 1 << 16, 1100 + 64},
		{"bounded", sensors.Info{Class: sensors.Motion, Rate: 1000}, time.Hour, 1 << 16, 1 << 16},
	} {
		if got := capture.QueueFor(tc.in, tc.len, tc.most); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// fakeSub is a subscription fed by the test.
type fakeSub struct {
	c         chan sensors.Sample
	keyframes int
}

func (f *fakeSub) C() <-chan sensors.Sample { return f.c }
func (f *fakeSub) Info() sensors.Info       { return sensors.Info{} }
func (f *fakeSub) Dropped() uint64          { return 0 }
func (f *fakeSub) Overrun() bool            { return false }
func (f *fakeSub) RequestKeyframe() error   { f.keyframes++; return sensors.ErrNoKeyframeControl }
func (f *fakeSub) Close()                   {}

// queued is a subscription holding samples, closed after them when closed
// is set.
func queued(samples []sensors.Sample, closed bool) *fakeSub {
	f := &fakeSub{c: make(chan sensors.Sample, len(samples))}
	for _, s := range samples {
		f.c <- s
	}
	if closed {
		close(f.c)
	}
	return f
}

// TestFeed: Feed ends with the window, or says what ended it first; it
// asks a video source for a keyframe once.
func TestFeed(t *testing.T) {
	dir := t.TempDir()
	motion := infoOf(sensors.Info{Class: sensors.Motion, Rate: 100})
	opts := capture.Options{Length: 50 * time.Millisecond}

	t.Run("window complete", func(t *testing.T) {
		w := newWriter(t, motion, filepath.Join(dir, "done.csv"), opts)
		defer w.Close()
		progress := 0
		if err := capture.Feed(context.Background(), queued(rows(10, 100), true), w, capture.FeedOptions{Progress: func() { progress++ }}); err != nil {
			t.Fatal(err)
		}
		if progress != 6 || w.Summary() != "5 rows" {
			t.Errorf("progress called %d times, summary %q; want 6 and 5 rows", progress, w.Summary())
		}
	})
	t.Run("hub closed", func(t *testing.T) {
		w := newWriter(t, motion, filepath.Join(dir, "closed.csv"), opts)
		defer w.Close()
		if err := capture.Feed(context.Background(), queued(rows(3, 100), true), w, capture.FeedOptions{}); !errors.Is(err, capture.ErrHubClosed) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("ctx, stop, deadline", func(t *testing.T) {
		w := newWriter(t, motion, filepath.Join(dir, "early.csv"), opts)
		defer w.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := capture.Feed(ctx, queued(nil, false), w, capture.FeedOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: err %v", err)
		}
		stop, failed := make(chan error, 1), errors.New("device gone")
		stop <- failed
		if err := capture.Feed(context.Background(), queued(nil, false), w, capture.FeedOptions{Stop: stop}); !errors.Is(err, failed) {
			t.Errorf("stopped: err %v", err)
		}
		deadline := make(chan time.Time, 1)
		deadline <- t0
		if err := capture.Feed(context.Background(), queued(nil, false), w, capture.FeedOptions{Deadline: deadline}); !errors.Is(err, capture.ErrDeadline) {
			t.Errorf("deadline: err %v", err)
		}
	})
	t.Run("writer fails", func(t *testing.T) {
		w := newWriter(t, infoOf(sensors.Info{Class: sensors.Still}), filepath.Join(dir, "missing", "s.jpg"), capture.Options{Numbered: true})
		if err := capture.Feed(context.Background(), queued(stills(1, 10), false), w, capture.FeedOptions{}); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err %v, want the file's", err)
		}
	})
	t.Run("asks for a keyframe once", func(t *testing.T) {
		w := newWriter(t, infoOf(sensors.Info{Class: sensors.Video}), filepath.Join(dir, "v.h264"), capture.Options{Length: time.Second})
		defer w.Close()
		var in []sensors.Sample
		for i := range 4 {
			in = append(in, sensors.Sample{Class: sensors.Video, Time: t0.Add(time.Duration(i) * time.Millisecond), Data: []byte{byte(i)}})
		}
		sub := queued(in, true)
		if err := capture.Feed(context.Background(), sub, w, capture.FeedOptions{}); !errors.Is(err, capture.ErrHubClosed) || sub.keyframes != 1 {
			t.Errorf("err %v, %d keyframe requests; want the hub closed and 1", err, sub.keyframes)
		}
	})
}
