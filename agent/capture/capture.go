// Package capture writes what one sensor delivers over a time window into
// a file: CSV for motion rows and a model's scores (a column per axis or
// label), WAV for audio, JPEG for a still camera (one still, the window's
// stills back to back as an MJPEG stream, or a numbered file each) and an
// Annex-B H.264 stream from the first keyframe for video. `edge-agent
// sample` and the console's local captures both write through it, so a
// capture is the same file whichever of them made it.
//
// A sample belongs to the window when it was captured less than the
// window's length after the first one, by the samples' own times: a
// capture of a source at rate R holds R × length samples however late they
// reach the writer (a loaded board, a deep subscription queue).
//
// Concurrency: a Writer belongs to the one goroutine that feeds it (Add in
// arrival order, then Close on every path); none of its methods may be
// called concurrently. A caller that shows progress elsewhere copies
// Covered, Summary and Frames out under its own lock. New, FileKind and
// QueueFor keep no state and are safe anywhere.
package capture

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// Writer writes one capture.
type Writer interface {
	// Add takes the next sample and reports whether the window is
	// complete; a sample past the window is not written.
	Add(s sensors.Sample) (done bool, err error)
	// Covered is how much of the window has been captured.
	Covered() time.Duration
	// Summary says what was written, e.g. "1000 rows".
	Summary() string
	// Frames lists where each JPEG of a still stream starts in the file,
	// then the end of the last; nil for every other file.
	Frames() []int64
	// Close finalises the file (a CSV header when no row came, the WAV
	// sizes, the buffer) and must be called on every path, an interrupted
	// or failed capture too, so what was captured is kept.
	Close() error
}

// Options says how New writes.
type Options struct {
	// Length is the window; 0 is one still and only a still camera
	// allows it.
	Length time.Duration
	// Create makes a file the writer fills; its error is returned as it
	// is. nil is os.Create. The console creates its files exclusively and
	// 0600, in its own directory.
	Create func(path string) (*os.File, error)
	// Numbered writes each still of a still camera to a file of its own:
	// path for one still, else path's name with -0001, -0002, … before
	// the extension. A file is made when its still arrives, so a capture
	// that gets none leaves none. Without Numbered the stills go into
	// path as one stream (JPEGs back to back), made by New.
	Numbered bool
}

// New opens the file at path for a capture of the sensor whose Info is
// info. Writers that name what they write (the CSV header) call info again
// when the first sample arrives: sources that detect their shape (a serial
// board's axes) only know it then.
func New(info func() sensors.Info, path string, o Options) (Writer, error) {
	in := info()
	if o.Length <= 0 && in.Class != sensors.Still {
		return nil, fmt.Errorf("a %s capture needs a length above 0", in.Class)
	}
	create := o.Create
	if create == nil {
		create = createFile
	}
	win := window{length: o.Length}
	switch in.Class {
	case sensors.Motion, sensors.Inference:
		f, err := open(create, path, 64<<10)
		if err != nil {
			return nil, err
		}
		return &csvWriter{file: f, info: info, win: win}, nil
	case sensors.Audio:
		return newWAVWriter(in, create, path, o.Length)
	case sensors.Still:
		if o.Numbered {
			return &numberedStills{path: path, create: create, single: o.Length <= 0, win: win}, nil
		}
		f, err := open(create, path, 64<<10)
		if err != nil {
			return nil, err
		}
		return &stillStream{file: f, single: o.Length <= 0, win: win}, nil
	case sensors.Video:
		f, err := open(create, path, 256<<10)
		if err != nil {
			return nil, err
		}
		return &h264Writer{file: f, win: win}, nil
	}
	return nil, fmt.Errorf("sensor %q has class %v, which cannot be captured", in.Name, in.Class)
}

// FileKind is the extension and content type of a capture of class c
// written as one file; length 0 is one still.
func FileKind(c sensors.Class, length time.Duration) (ext, contentType string) {
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

// QueueFor sizes a NoDrop subscription's queue to hold a whole window of
// in's samples with 10 % slack, and at most most, so only a writer stalled
// for the entire capture can overrun it.
func QueueFor(in sensors.Info, length time.Duration, most int) int {
	rate := in.Rate
	for _, f := range in.Frequencies {
		rate = max(rate, f)
	}
	switch in.Class {
	case sensors.Audio:
		rate = 100 // blocks of 10 ms or longer
	case sensors.Still, sensors.Video:
		if rate <= 0 {
			rate = 30
		}
	}
	if rate <= 0 {
		rate = 1000
	}
	return min(int(rate*length.Seconds()*1.1)+64, most)
}

// window decides membership by the samples' own capture times.
type window struct {
	length time.Duration
	t0     time.Time
	last   time.Duration // the end of the last sample taken, from t0
	n      int
}

// take reports whether a sample captured at t, lasting dur, is inside the
// window; past reports that the window is over.
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

// createFile is the default Options.Create.
func createFile(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return f, nil
}

// file is the buffered file a writer fills, with its byte count.
type file struct {
	f  *os.File
	bw *bufio.Writer
	n  int64
}

func open(create func(string) (*os.File, error), path string, buf int) (file, error) {
	f, err := create(path)
	if err != nil {
		return file{}, err
	}
	return file{f: f, bw: bufio.NewWriterSize(f, buf)}, nil
}

// write appends p; what names the part in an error.
func (b *file) write(p []byte, what string) error {
	if _, err := b.bw.Write(p); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	b.n += int64(len(p))
	return nil
}

func (b *file) close() error {
	err := b.bw.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}
