package capture

import (
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

// csvWriter writes rows: a timestamp column (milliseconds since the first
// row) and one column per axis. The header is written with the first row,
// from the source's Info at that time: a serial board's axes are detected
// from its first lines, so an Info taken before the capture has none and
// the header would name no axis (defect 4 of issue 12).
type csvWriter struct {
	file
	info   func() sensors.Info
	win    window
	header bool    // written
	rate   float64 // 0 until the source knows it (a detected rate comes late)
	line   []byte
	// gaps counts rows the driver reported lost (jumps in Seq), e.g. ticks
	// an IIO poller skipped because the board was too busy to read on time.
	gaps    uint64
	lastSeq uint64
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
	return w.write([]byte(strings.Join(cols, ",")+"\n"), "csv header")
}

func (w *csvWriter) Add(s sensors.Sample) (bool, error) {
	if w.rate <= 0 {
		// Until the source reports its rate the last row's duration is
		// unknown, and Covered counts up to its start.
		w.rate = w.info().Rate
	}
	var dur time.Duration
	if w.rate > 0 {
		dur = time.Duration(float64(time.Second) / w.rate)
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
	return false, w.write(w.line, "csv")
}

func (w *csvWriter) Covered() time.Duration { return w.win.covered() }
func (w *csvWriter) Frames() []int64        { return nil }

func (w *csvWriter) Summary() string {
	if w.gaps > 0 {
		return fmt.Sprintf("%d rows (%d more the sensor driver reported lost)", w.win.n, w.gaps)
	}
	return fmt.Sprintf("%d rows", w.win.n)
}

// Close writes the header if no row came (an interrupted or failed capture
// still leaves a CSV file that names its columns) and flushes.
func (w *csvWriter) Close() error {
	var err error
	if !w.header {
		err = w.writeHeader(0)
	}
	if cerr := w.close(); err == nil {
		err = cerr
	}
	return err
}

// wavWriter writes s16le PCM into a RIFF/WAVE file. The sizes in the
// header are patched in Close, so an interrupted capture is still a valid
// file. Its window is counted in frames (the PCM's own clock), not by
// sample times.
type wavWriter struct {
	file
	rate, channels int
	want, got      int64 // frames
}

func newWAVWriter(in sensors.Info, create func(string) (*os.File, error), path string, length time.Duration) (*wavWriter, error) {
	rate, ch := int(in.Rate), max(in.Channels, 1)
	if rate <= 0 {
		return nil, fmt.Errorf("audio sensor %q reports no sample rate", in.Name)
	}
	f, err := open(create, path, 64<<10)
	if err != nil {
		return nil, err
	}
	w := &wavWriter{file: f, rate: rate, channels: ch, want: int64(length.Seconds()*float64(rate) + 0.5)}
	if err := w.write(wavHeader(rate, ch, 0), "wav header"); err != nil {
		_ = f.f.Close()
		return nil, err
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

func (w *wavWriter) Add(s sensors.Sample) (bool, error) {
	fb := 2 * w.channels
	data := s.Data[:len(s.Data)/fb*fb]
	if left := w.want - w.got; int64(len(data)/fb) > left {
		data = data[:left*int64(fb)]
	}
	if err := w.write(data, "wav"); err != nil {
		return false, err
	}
	w.got += int64(len(data) / fb)
	return w.got >= w.want, nil
}

func (w *wavWriter) Covered() time.Duration {
	return time.Duration(w.got) * time.Second / time.Duration(w.rate)
}

func (w *wavWriter) Summary() string { return fmt.Sprintf("%d frames at %d Hz", w.got, w.rate) }
func (w *wavWriter) Frames() []int64 { return nil }

func (w *wavWriter) Close() error {
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

// stillStream writes one still, or every still of the window back to back
// (MJPEG), and keeps where each starts so one can be served alone.
type stillStream struct {
	file
	win    window
	single bool
	starts []int64
}

func (w *stillStream) Add(s sensors.Sample) (bool, error) {
	if w.single {
		w.win.n = 1
	} else if in, past := w.win.take(s.Time, s.Duration); past || !in {
		return past, nil
	}
	w.starts = append(w.starts, w.n)
	return w.single, w.write(s.Data, "jpeg")
}

func (w *stillStream) Covered() time.Duration {
	if w.single {
		return 0
	}
	return w.win.covered()
}

func (w *stillStream) Frames() []int64 {
	if len(w.starts) == 0 {
		return nil
	}
	return append(append([]int64(nil), w.starts...), w.n)
}

func (w *stillStream) Summary() string {
	if w.single {
		if w.win.n == 0 {
			return "no still"
		}
		return "1 still"
	}
	return fmt.Sprintf("%d stills", w.win.n)
}

func (w *stillStream) Close() error { return w.close() }

// numberedStills writes each still to a file of its own (Options.Numbered).
type numberedStills struct {
	path   string
	create func(string) (*os.File, error)
	single bool
	win    window
	files  []string
}

func (w *numberedStills) Add(s sensors.Sample) (bool, error) {
	name := w.path
	if w.single {
		w.win.n = 1
	} else if in, past := w.win.take(s.Time, s.Duration); past || !in {
		return past, nil
	} else {
		ext := filepath.Ext(w.path)
		name = fmt.Sprintf("%s-%04d%s", strings.TrimSuffix(w.path, ext), w.win.n, ext)
	}
	f, err := w.create(name)
	if err != nil {
		return false, err
	}
	_, err = f.Write(s.Data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("write jpeg: %w", err)
	}
	w.files = append(w.files, name)
	return w.single, nil
}

func (w *numberedStills) Covered() time.Duration {
	if w.single {
		return 0
	}
	return w.win.covered()
}

func (w *numberedStills) Summary() string {
	switch {
	case len(w.files) == 1:
		return "1 still"
	case len(w.files) > 1:
		return fmt.Sprintf("%d stills (%s … %s)", len(w.files), filepath.Base(w.files[0]), filepath.Base(w.files[len(w.files)-1]))
	}
	return "no stills"
}

func (w *numberedStills) Frames() []int64 { return nil }
func (w *numberedStills) Close() error    { return nil }

// h264Writer writes an Annex-B elementary stream from the first keyframe:
// access units before it cannot be decoded.
type h264Writer struct {
	file
	win window
}

func (w *h264Writer) Add(s sensors.Sample) (bool, error) {
	if w.win.n == 0 && !s.Keyframe {
		return false, nil
	}
	if in, past := w.win.take(s.Time, s.Duration); past || !in {
		return past, nil
	}
	return false, w.write(s.Data, "h264")
}

func (w *h264Writer) Covered() time.Duration { return w.win.covered() }
func (w *h264Writer) Summary() string        { return fmt.Sprintf("%d access units", w.win.n) }
func (w *h264Writer) Frames() []int64        { return nil }
func (w *h264Writer) Close() error           { return w.close() }
