package console

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// The files of a local capture, as `edge-agent sample` writes them: CSV
// for motion rows (and a model's scores, a column per label), WAV for audio, one JPEG (no length) or an MJPEG stream
// (concatenated JPEGs) for a still camera, an Annex-B H.264 stream from
// the first keyframe for video. A sample belongs to the window when it was
// captured less than the window's length after the first one, by the
// samples' own times, so a capture holds rate × length samples however
// late they reach the writer.

// fileWriter writes one capture. add takes every sample in arrival order
// and reports whether the window is complete; close finalises the file and
// is called on every path, so what was captured is kept. Used from the
// capture's goroutine only.
type fileWriter interface {
	add(s sensors.Sample) (done bool, err error)
	covered() time.Duration
	summary() string
	// frames lists where each JPEG of an MJPEG stream starts, and its end;
	// nil for other files.
	frames() []int64
	close() error
}

// fileKind is the extension and content type of a capture of class c;
// length 0 is one still.
func fileKind(c sensors.Class, length time.Duration) (ext, ctype string) {
	switch c {
	case sensors.Motion, sensors.Inference:
		return ".csv", "text/csv; charset=utf-8"
	case sensors.Audio:
		return ".wav", "audio/wav"
	case sensors.Still:
		if length == 0 {
			return ".jpg", "image/jpeg"
		}
		return ".mjpeg", "video/x-motion-jpeg"
	case sensors.Video:
		return ".h264", "video/h264"
	}
	return ".bin", "application/octet-stream"
}

func newFileWriter(info func() sensors.Info, path string, length time.Duration) (fileWriter, error) {
	in := info()
	if length <= 0 && in.Class != sensors.Still {
		return nil, fmt.Errorf("a %s capture needs a length above 0", in.Class)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create capture: %w", err)
	}
	base := fileBase{f: f, bw: bufio.NewWriterSize(f, 64<<10), win: window{length: length}}
	switch in.Class {
	case sensors.Motion, sensors.Inference:
		return &csvFile{fileBase: base, info: info}, nil
	case sensors.Audio:
		rate, ch := int(in.Rate), max(in.Channels, 1)
		if rate <= 0 {
			f.Close()
			return nil, fmt.Errorf("audio sensor %q reports no sample rate", in.Name)
		}
		w := &wavFile{fileBase: base, rate: rate, channels: ch, want: int64(length.Seconds()*float64(rate) + 0.5)}
		if err := w.put(wavHeader(rate, ch, 0)); err != nil {
			f.Close()
			return nil, err
		}
		return w, nil
	case sensors.Still:
		return &jpegFile{fileBase: base, single: length <= 0}, nil
	case sensors.Video:
		return &h264File{fileBase: base}, nil
	}
	f.Close()
	return nil, fmt.Errorf("sensor %q has class %v, which cannot be captured", in.Name, in.Class)
}

// window decides membership by the samples' own capture times.
type window struct {
	length time.Duration
	t0     time.Time
	last   time.Duration
	n      int
}

func (w *window) take(t time.Time, dur time.Duration) (in, past bool) {
	if w.n == 0 {
		w.t0 = t
	}
	off := t.Sub(w.t0)
	if off >= w.length {
		return false, true
	}
	w.n++
	w.last = off + dur
	return true, false
}

func (w *window) covered() time.Duration { return min(w.last, w.length) }

// fileBase is the buffered file every writer fills, with its byte count.
type fileBase struct {
	f   *os.File
	bw  *bufio.Writer
	win window
	n   int64
}

func (b *fileBase) put(p []byte) error {
	if _, err := b.bw.Write(p); err != nil {
		return fmt.Errorf("write capture: %w", err)
	}
	b.n += int64(len(p))
	return nil
}

func (b *fileBase) covered() time.Duration { return b.win.covered() }
func (b *fileBase) frames() []int64        { return nil }

func (b *fileBase) close() error {
	err := b.bw.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// csvFile: a timestamp column (ms since the first row) and one per axis.
// The header is written with the first row, from Info then: a serial
// board's axes are known only once its lines arrive.
type csvFile struct {
	fileBase
	info   func() sensors.Info
	header bool
	line   []byte
}

func (w *csvFile) writeHeader(values int) error {
	w.header = true
	axes := w.info().Axes
	cols := []string{"timestamp"}
	for i := range max(len(axes), values) {
		a := ""
		if i < len(axes) {
			a = axes[i]
		}
		if a == "" {
			a = "axis" + strconv.Itoa(i)
		}
		cols = append(cols, a)
	}
	return w.put([]byte(strings.Join(cols, ",") + "\n"))
}

func (w *csvFile) add(s sensors.Sample) (bool, error) {
	var dur time.Duration
	if rate := w.info().Rate; rate > 0 {
		dur = time.Duration(float64(time.Second) / rate)
	}
	in, past := w.win.take(s.Time, dur)
	if past || !in {
		return past, nil
	}
	if !w.header {
		if err := w.writeHeader(len(s.Values)); err != nil {
			return false, err
		}
	}
	ms := float64(s.Time.Sub(w.win.t0)) / float64(time.Millisecond)
	w.line = strconv.AppendFloat(w.line[:0], ms, 'f', 3, 64)
	for _, v := range s.Values {
		w.line = append(w.line, ',')
		w.line = strconv.AppendFloat(w.line, v, 'g', -1, 64)
	}
	w.line = append(w.line, '\n')
	return false, w.put(w.line)
}

func (w *csvFile) summary() string { return fmt.Sprintf("%d rows", w.win.n) }

func (w *csvFile) close() error {
	var err error
	if !w.header {
		err = w.writeHeader(0)
	}
	if cerr := w.fileBase.close(); err == nil {
		err = cerr
	}
	return err
}

// wavFile: s16le PCM in a RIFF/WAVE file whose sizes are patched in close.
type wavFile struct {
	fileBase
	rate, channels int
	want, got      int64 // frames
}

func wavHeader(rate, channels int, dataBytes uint32) []byte {
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+dataBytes)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], uint16(channels))
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(rate*channels*2))
	binary.LittleEndian.PutUint16(h[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], dataBytes)
	return h
}

func (w *wavFile) add(s sensors.Sample) (bool, error) {
	fb := 2 * w.channels
	data := s.Data[:len(s.Data)/fb*fb]
	if left := w.want - w.got; int64(len(data)/fb) > left {
		data = data[:left*int64(fb)]
	}
	if err := w.put(data); err != nil {
		return false, err
	}
	w.got += int64(len(data) / fb)
	return w.got >= w.want, nil
}

func (w *wavFile) covered() time.Duration {
	return time.Duration(w.got) * time.Second / time.Duration(w.rate)
}

func (w *wavFile) summary() string { return fmt.Sprintf("%d frames at %d Hz", w.got, w.rate) }

func (w *wavFile) close() error {
	err := w.bw.Flush()
	if err == nil {
		n := w.got * int64(2*w.channels)
		if n > 1<<32-64 {
			err = errors.New("wav: capture larger than 4 GiB")
		} else {
			_, err = w.f.WriteAt(wavHeader(w.rate, w.channels, uint32(n)), 0)
		}
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// jpegFile: one still, or every still of the window back to back (MJPEG),
// with where each starts.
type jpegFile struct {
	fileBase
	single bool
	starts []int64
}

func (w *jpegFile) add(s sensors.Sample) (bool, error) {
	if !w.single {
		in, past := w.win.take(s.Time, s.Duration)
		if past || !in {
			return past, nil
		}
	} else {
		w.win.n = 1
	}
	w.starts = append(w.starts, w.n)
	return w.single, w.put(s.Data)
}

func (w *jpegFile) covered() time.Duration {
	if w.single {
		return 0
	}
	return w.win.covered()
}

func (w *jpegFile) frames() []int64 {
	if len(w.starts) == 0 {
		return nil
	}
	return append(append([]int64(nil), w.starts...), w.n)
}

func (w *jpegFile) summary() string {
	if w.single {
		if w.win.n == 0 {
			return "no still"
		}
		return "1 still"
	}
	return fmt.Sprintf("%d stills", w.win.n)
}

// h264File: an Annex-B stream from the first keyframe (what comes before
// it cannot be decoded).
type h264File struct {
	fileBase
	skipped int
}

func (w *h264File) add(s sensors.Sample) (bool, error) {
	if w.win.n == 0 && !s.Keyframe {
		w.skipped++
		return false, nil
	}
	in, past := w.win.take(s.Time, s.Duration)
	if past || !in {
		return past, nil
	}
	return false, w.put(s.Data)
}

func (w *h264File) summary() string { return fmt.Sprintf("%d access units", w.win.n) }
