package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// sampleWriter turns the samples of one capture window into a file. add is
// called with every sample in arrival order and reports whether the window
// is complete; close finalises the file (headers, flush) and must be called
// on every path, including interruption, so what was captured is kept.
// Used from one goroutine.
type sampleWriter interface {
	add(s sensors.Sample) (done bool, err error)
	// covered is how much of the window has been captured.
	covered() time.Duration
	// summary describes what was written, e.g. "1000 rows".
	summary() string
	close() error
}

// defaultExt is the output extension for a sensor class.
func defaultExt(c sensors.Class) string {
	switch c {
	case sensors.Motion:
		return ".csv"
	case sensors.Audio:
		return ".wav"
	case sensors.Still:
		return ".jpg"
	case sensors.Video:
		return ".h264"
	}
	return ".bin"
}

// newSampleWriter opens path for the class of info(). window is the capture
// length; 0 means one still. info is the source's Info: a writer that names
// what it writes (the CSV header) calls it again when the first sample
// arrives, because sources that detect their shape (serial axes) only know
// it then.
func newSampleWriter(info func() sensors.Info, path string, window time.Duration) (sampleWriter, error) {
	i := info()
	switch i.Class {
	case sensors.Motion:
		return newCSVWriter(info, path, window)
	case sensors.Audio:
		return newWAVWriter(i, path, window)
	case sensors.Still:
		return newJPEGWriter(path, window)
	case sensors.Video:
		return newH264Writer(path, window)
	}
	return nil, fmt.Errorf("sensor %q has class %v, which sample cannot write", i.Name, i.Class)
}

// timeWindow decides membership by the samples' own timestamps: a sample
// belongs when it was captured less than length after the first one. For a
// source sampling at rate R that is exactly R × length samples, independent
// of how late they reach the writer.
type timeWindow struct {
	length time.Duration
	t0     time.Time
	last   time.Duration
	n      int
}

// take reports whether s is inside the window; past reports the window is over.
func (w *timeWindow) take(t time.Time, dur time.Duration) (in, past bool) {
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

func (w *timeWindow) covered() time.Duration { return min(w.last, w.length) }

// csvWriter writes motion rows: a timestamp column (milliseconds since the
// first row) and one column per axis. The header is written with the first
// row, from the source's Info at that time: a serial board's axes are
// detected from its first lines, so an Info taken before the capture has
// none (defect 4 of issue 12: a header without axis columns).
type csvWriter struct {
	f      *os.File
	bw     *bufio.Writer
	info   func() sensors.Info
	header bool // written
	win    timeWindow
	rate   float64 // 0 until the source knows it (detected rates come late)
	line   []byte
	// gaps counts rows the driver reported lost (jumps in Seq), e.g. ticks
	// an IIO poller skipped because the board was too busy to read on time.
	gaps    uint64
	lastSeq uint64
}

func newCSVWriter(info func() sensors.Info, path string, window time.Duration) (*csvWriter, error) {
	if window <= 0 {
		return nil, errors.New("motion needs -seconds > 0")
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &csvWriter{f: f, bw: bufio.NewWriterSize(f, 64<<10), info: info, win: timeWindow{length: window}}, nil
}

// writeHeader names the columns from Info's axes; a row with more values
// than named axes (a source that does not name them) gets axisN names, so
// every line of the file has the same number of fields.
func (w *csvWriter) writeHeader(values int) error {
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
	if _, err := fmt.Fprintln(w.bw, strings.Join(cols, ",")); err != nil {
		return fmt.Errorf("write csv header: %w", err)
	}
	return nil
}

func (w *csvWriter) add(s sensors.Sample) (bool, error) {
	if w.rate <= 0 {
		// Until the source reports its rate, the last row's duration is
		// unknown and covered() counts up to its start.
		w.rate = w.info().Rate
	}
	var dur time.Duration
	if w.rate > 0 {
		dur = time.Duration(float64(time.Second) / w.rate)
	}
	in, past := w.win.take(s.Time, dur)
	if past {
		return true, nil
	}
	if !in {
		return false, nil
	}
	if !w.header {
		if err := w.writeHeader(len(s.Values)); err != nil {
			return false, err
		}
	}
	if w.win.n > 1 && s.Seq > w.lastSeq+1 {
		w.gaps += s.Seq - w.lastSeq - 1
	}
	w.lastSeq = s.Seq
	ms := float64(s.Time.Sub(w.win.t0)) / float64(time.Millisecond)
	w.line = strconv.AppendFloat(w.line[:0], ms, 'f', 3, 64)
	for _, v := range s.Values {
		w.line = append(w.line, ',')
		w.line = strconv.AppendFloat(w.line, v, 'g', -1, 64)
	}
	w.line = append(w.line, '\n')
	if _, err := w.bw.Write(w.line); err != nil {
		return false, fmt.Errorf("write csv: %w", err)
	}
	return false, nil
}

func (w *csvWriter) covered() time.Duration { return w.win.covered() }
func (w *csvWriter) summary() string {
	if w.gaps > 0 {
		return fmt.Sprintf("%d rows (%d more the sensor driver reported lost)", w.win.n, w.gaps)
	}
	return fmt.Sprintf("%d rows", w.win.n)
}

// close writes the header if no row came (an interrupted or failed
// capture still leaves a CSV file that names its columns) and flushes.
func (w *csvWriter) close() error {
	var err error
	if !w.header {
		err = w.writeHeader(0)
	}
	if ferr := w.bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// wavWriter writes s16le PCM into a RIFF/WAVE file. The sizes in the header
// are patched in close, so an interrupted capture is still a valid file.
type wavWriter struct {
	f        *os.File
	bw       *bufio.Writer
	rate     int
	channels int
	want     int64 // frames in the window
	frames   int64
}

func newWAVWriter(info sensors.Info, path string, window time.Duration) (*wavWriter, error) {
	if window <= 0 {
		return nil, errors.New("audio needs -seconds > 0")
	}
	rate, ch := int(info.Rate), info.Channels
	if ch <= 0 {
		ch = 1
	}
	if rate <= 0 {
		return nil, fmt.Errorf("audio sensor %q reports no sample rate", info.Name)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	w := &wavWriter{f: f, bw: bufio.NewWriterSize(f, 64<<10), rate: rate, channels: ch,
		want: int64(window.Seconds()*float64(rate) + 0.5)}
	if _, err := w.bw.Write(wavHeader(rate, ch, 0)); err != nil {
		f.Close()
		return nil, fmt.Errorf("write wav header: %w", err)
	}
	return w, nil
}

// wavHeader is the 44-byte canonical PCM header for dataBytes of s16 data.
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

func (w *wavWriter) add(s sensors.Sample) (bool, error) {
	frameBytes := 2 * w.channels
	data := s.Data[:len(s.Data)/frameBytes*frameBytes]
	if left := w.want - w.frames; int64(len(data)/frameBytes) > left {
		data = data[:left*int64(frameBytes)]
	}
	if _, err := w.bw.Write(data); err != nil {
		return false, fmt.Errorf("write wav: %w", err)
	}
	w.frames += int64(len(data) / frameBytes)
	return w.frames >= w.want, nil
}

func (w *wavWriter) covered() time.Duration {
	return time.Duration(w.frames) * time.Second / time.Duration(w.rate)
}
func (w *wavWriter) summary() string {
	return fmt.Sprintf("%d frames at %d Hz", w.frames, w.rate)
}

func (w *wavWriter) close() error {
	err := w.bw.Flush()
	if err == nil {
		n := w.frames * int64(2*w.channels)
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

// jpegWriter writes stills: with a zero window the first still to path;
// otherwise every still in the window, either concatenated into one MJPEG
// stream (path ends in .mjpeg) or as numbered files name-0001.jpg, ….
type jpegWriter struct {
	path   string
	single bool
	stream *os.File
	win    timeWindow
	files  []string
}

func newJPEGWriter(path string, window time.Duration) (*jpegWriter, error) {
	w := &jpegWriter{path: path, single: window <= 0, win: timeWindow{length: window}}
	if !w.single && strings.EqualFold(filepath.Ext(path), ".mjpeg") {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("create output: %w", err)
		}
		w.stream = f
	}
	return w, nil
}

func (w *jpegWriter) add(s sensors.Sample) (bool, error) {
	if w.single {
		if err := os.WriteFile(w.path, s.Data, 0o644); err != nil {
			return false, fmt.Errorf("write jpeg: %w", err)
		}
		w.win.n, w.files = 1, []string{w.path}
		return true, nil
	}
	in, past := w.win.take(s.Time, s.Duration)
	if past {
		return true, nil
	}
	if !in {
		return false, nil
	}
	if w.stream != nil {
		if _, err := w.stream.Write(s.Data); err != nil {
			return false, fmt.Errorf("write mjpeg: %w", err)
		}
		return false, nil
	}
	ext := filepath.Ext(w.path)
	name := fmt.Sprintf("%s-%04d%s", strings.TrimSuffix(w.path, ext), w.win.n, ext)
	if err := os.WriteFile(name, s.Data, 0o644); err != nil {
		return false, fmt.Errorf("write jpeg: %w", err)
	}
	w.files = append(w.files, name)
	return false, nil
}

func (w *jpegWriter) covered() time.Duration {
	if w.single {
		return 0
	}
	return w.win.covered()
}

func (w *jpegWriter) summary() string {
	switch {
	case w.stream != nil:
		return fmt.Sprintf("%d frames", w.win.n)
	case len(w.files) == 1:
		return "1 still"
	case len(w.files) > 1:
		return fmt.Sprintf("%d stills (%s … %s)", len(w.files), filepath.Base(w.files[0]), filepath.Base(w.files[len(w.files)-1]))
	}
	return "no stills"
}

func (w *jpegWriter) close() error {
	if w.stream != nil {
		return w.stream.Close()
	}
	return nil
}

// h264Writer writes an Annex-B elementary stream starting at the first
// keyframe (earlier access units cannot be decoded).
type h264Writer struct {
	f       *os.File
	bw      *bufio.Writer
	win     timeWindow
	skipped int
}

func newH264Writer(path string, window time.Duration) (*h264Writer, error) {
	if window <= 0 {
		return nil, errors.New("video needs -seconds > 0")
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &h264Writer{f: f, bw: bufio.NewWriterSize(f, 256<<10), win: timeWindow{length: window}}, nil
}

func (w *h264Writer) add(s sensors.Sample) (bool, error) {
	if w.win.n == 0 && !s.Keyframe {
		w.skipped++
		return false, nil
	}
	in, past := w.win.take(s.Time, s.Duration)
	if past {
		return true, nil
	}
	if !in {
		return false, nil
	}
	if _, err := w.bw.Write(s.Data); err != nil {
		return false, fmt.Errorf("write h264: %w", err)
	}
	return false, nil
}

func (w *h264Writer) covered() time.Duration { return w.win.covered() }
func (w *h264Writer) summary() string {
	return fmt.Sprintf("%d access units", w.win.n)
}

func (w *h264Writer) close() error {
	err := w.bw.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
