// Command camerabench measures the CPU time per frame of internal/camjpeg's
// operations on the input files scripts/camera-bench.sh makes, the same
// files its anchors (vipsthumbnail, cjpeg, djpeg, ffmpeg) read, so the
// figures compare like with like. CPU time is the process's user+system
// time (getrusage) around a loop over every frame, the best of -reps
// rounds, with GOMAXPROCS 1 as the script sets it.
//
//	go run ./scripts/camerabench -dir DIR -sizes 320x240,640x480
//
// DIR/WxH/ holds frame-NNN.jpg (camera MJPEG frames), frames.yuyv and
// frames.nv12 (the same frames raw, back to back). Output: one line per
// measurement, "op size codec ms-per-frame bytes-per-frame".
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
)

func main() {
	dir := flag.String("dir", "", "input directory (see the doc comment)")
	sizes := flag.String("sizes", "320x240,640x480,1280x720", "frame sizes, comma-separated")
	reps := flag.Int("reps", 3, "rounds over the frames; the fastest counts")
	height := flag.Int("height", 96, "preview height")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: camerabench -dir DIR [-sizes WxH,...] [-reps N]")
		os.Exit(2)
	}
	if err := run(*dir, strings.Split(*sizes, ","), *reps, *height); err != nil {
		fmt.Fprintln(os.Stderr, "camerabench:", err)
		os.Exit(1)
	}
}

func run(dir string, sizes []string, reps, height int) error {
	for _, size := range sizes {
		var w, h int
		if _, err := fmt.Sscanf(size, "%dx%d", &w, &h); err != nil {
			return fmt.Errorf("size %q: %w", size, err)
		}
		d := filepath.Join(dir, size)
		jpgs, err := readJPEGs(d)
		if err != nil {
			return err
		}
		yuyv, err := frames(filepath.Join(d, "frames.yuyv"), w*h*2)
		if err != nil {
			return err
		}
		nv12, err := frames(filepath.Join(d, "frames.nv12"), w*h*3/2)
		if err != nil {
			return err
		}
		for _, c := range camjpeg.Codecs() {
			ops := []struct {
				name string
				in   [][]byte
				f    func(dst, in []byte) ([]byte, error)
			}{
				{"thumbnail", jpgs, func(dst, in []byte) ([]byte, error) { return c.Thumbnail(dst, in, height, 80) }},
				{"yuyv-encode", yuyv, func(dst, in []byte) ([]byte, error) { return c.EncodeYUYV(dst, in, w, h, 85) }},
				{"nv12-encode", nv12, func(dst, in []byte) ([]byte, error) { return c.EncodeNV12(dst, in, w, h, 85) }},
			}
			for _, op := range ops {
				ms, bytes, err := measure(op.in, reps, op.f)
				if err != nil {
					return fmt.Errorf("%s %s %s: %w", op.name, size, c.Name(), err)
				}
				fmt.Printf("%s %dx%d %s %.3f %d\n", op.name, w, h, c.Name(), ms, bytes)
			}
		}
	}
	return nil
}

// measure runs f over every input reps times and returns the best round's
// CPU milliseconds per input and the mean output size.
func measure(in [][]byte, reps int, f func(dst, in []byte) ([]byte, error)) (float64, int, error) {
	var buf []byte
	var err error
	best := time.Duration(1<<63 - 1)
	total := 0
	for range reps {
		start := cpu()
		total = 0
		for _, b := range in {
			if buf, err = f(buf[:0], b); err != nil {
				return 0, 0, err
			}
			total += len(buf)
		}
		best = min(best, cpu()-start)
	}
	return float64(best) / float64(time.Millisecond) / float64(len(in)), total / len(in), nil
}

func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func readJPEGs(dir string) ([][]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "frame-*.jpg"))
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("no frame-*.jpg in %s", dir)
	}
	sort.Strings(names)
	out := make([][]byte, 0, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func frames(path string, size int) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < size || len(b)%size != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte frames", path, len(b), size)
	}
	var out [][]byte
	for len(b) > 0 {
		out = append(out, b[:size:size])
		b = b[size:]
	}
	return out, nil
}
