package iio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// maxBadReads is how many consecutive unparsable sysfs reads end a poll run
// with an error: one torn read is a glitch, a run of them is a broken device.
const maxBadReads = 10

// maxPollLag is how far polling may fall behind before it skips ticks
// instead of catching up: a busy board (or a virtual one whose host is
// busy) stalls a process for tens to hundreds of milliseconds, and those
// ticks can still be read; a stall of seconds is better reported as loss.
const maxPollLag = time.Second

// presenceCheck is how often polling checks that the device directory still
// exists. On a real board a read from an unbound device fails at once; a
// fake tree keeps answering from the open inode, so the check also makes
// device loss visible there.
const presenceCheck = time.Second

// runPoll reads the three _raw files at the configured rate. Ticks are paced
// against start + n/rate (not sleep-after-read), so read time and scheduler
// latency never accumulate and rate × seconds rows arrive. A tick served late
// still gets its own reading, so it is not lost: after a delay of up to
// maxPollLag the loop reads the overdue ticks back to back. Only after a
// longer stall does it skip the missed ticks (counted in Lost, Seq jumps)
// instead of emitting a long burst of readings taken long after their time.
func (s *Source) runPoll(ctx context.Context, out chan<- sensors.Sample, dev Device, cal calibration, want float64) error {
	rate, err := setRate(dev, want)
	if err != nil {
		return fmt.Errorf("iio %s: %w", s.name, err)
	}
	// The chip may run faster than asked (nearest available rate >= want);
	// polling runs at the requested rate then, and at the chip's rate when
	// the driver rounded down.
	pollRate := min(rate, want)
	var files [3]*os.File
	defer func() {
		for _, f := range files {
			if f != nil {
				_ = f.Close()
			}
		}
	}()
	for i, ax := range axes {
		f, err := os.Open(filepath.Join(dev.Dir, "in_"+ax+"_raw"))
		if err != nil {
			return fmt.Errorf("iio %s: open %s: %w", s.name, ax, err)
		}
		files[i] = f
	}
	s.opened(dev, "poll", want, pollRate)

	period := time.Duration(float64(time.Second) / pollRate)
	maxLag := max(5*period, maxPollLag)
	start := s.clk.Now()
	lastCheck := start
	buf := make([]byte, 32)
	bad := 0
	var raw [3]int64
	for n := uint64(0); ; n++ {
		target := start.Add(time.Duration(float64(n) * float64(time.Second) / pollRate))
		now := s.clk.Now()
		if d := target.Sub(now); d > 0 {
			if s.clk.Sleep(ctx, d) != nil {
				return nil
			}
		} else if -d > maxLag {
			skip := uint64(-d / period)
			n += skip
			s.noteLost(skip, "poll fell behind")
		}
		if ctx.Err() != nil {
			return nil
		}
		now = s.clk.Now()
		if now.Sub(lastCheck) >= presenceCheck {
			lastCheck = now
			if _, err := os.Stat(filepath.Join(dev.Dir, "name")); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("iio %s: device %s gone: %w", s.name, dev.Name, err)
			}
		}
		ok := true
		for i, f := range files {
			v, err := readRaw(f, buf)
			if err != nil {
				var perr *strconv.NumError
				if !errors.As(err, &perr) {
					return fmt.Errorf("iio %s: read %s: %w", s.name, axes[i], err)
				}
				ok = false
				break
			}
			raw[i] = v
		}
		if !ok {
			s.badRead.Add(1)
			bad++
			if bad >= maxBadReads {
				return fmt.Errorf("iio %s: %d consecutive unparsable reads from %s", s.name, bad, dev.Dir)
			}
			continue
		}
		bad = 0
		vals := make([]float64, 3)
		cal.apply(vals, raw)
		if !send(ctx, out, sensors.Sample{Class: sensors.Motion, Time: s.clk.Now(), Seq: n, Values: vals}) {
			return nil
		}
	}
}

// readRaw re-reads an open sysfs attribute from offset 0 (pread gives a fresh
// value each time) and parses the integer in it.
func readRaw(f *os.File, buf []byte) (int64, error) {
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	b := buf[:n]
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return strconv.ParseInt(string(b), 10, 64)
}
