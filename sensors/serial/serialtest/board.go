// Package serialtest plays an Arduino-style board that prints CSV readings on
// its own clock. It feeds the serial source in tests (a pty), the virtual
// board's USB serial port (scripts/vboard/hostserial) and the board tests'
// CDC-ACM gadget, so all of them see the same stream.
package serialtest

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// Header is what the board prints once when it starts, as sketches often do
// in setup(). The serial source skips it (not numbers) and names the axes
// axis0…axis2.
const Header = "sin,cos,count\r\n"

// Axes is the number of values in a reading.
const Axes = 3

// AppendLine appends reading i of a board sampling at rate to b: a 1 Hz sine
// and cosine (4 decimals) and the reading number, separated by commas and
// ended by CRLF as Arduino's println does.
func AppendLine(b []byte, i uint64, rate float64) []byte {
	ph := 2 * math.Pi * float64(i) / rate
	b = strconv.AppendFloat(b, math.Sin(ph), 'f', 4, 64)
	b = append(b, ',')
	b = strconv.AppendFloat(b, math.Cos(ph), 'f', 4, 64)
	b = append(b, ',')
	b = strconv.AppendUint(b, i, 10)
	return append(b, '\r', '\n')
}

// DefaultBuffer is the transmit buffer of a Board when Buffer is 0: about
// an FTDI adapter's.
const DefaultBuffer = 512

// Board emits reading i at start + i/Rate. A Board is played by one Play at
// a time; Lines and Dropped may be read concurrently.
type Board struct {
	Rate   float64 // readings per second; must be > 0
	Header bool    // print Header first
	// Buffer is the board's transmit buffer in bytes (0: DefaultBuffer).
	// While the other end does not read, readings that do not fit are
	// dropped, as a UART drops them, instead of piling up stale data that a
	// late reader would get in one burst.
	Buffer int

	lines   atomic.Uint64
	dropped atomic.Uint64
}

// Lines counts readings queued for sending (the last one may still be in
// the buffer). Reading Lines()-1 is the newest the board has printed.
func (b *Board) Lines() uint64 { return b.lines.Load() }

// Dropped counts readings lost to a full buffer.
func (b *Board) Dropped() uint64 { return b.dropped.Load() }

// Play writes readings to w until ctx ends (nil) or a write fails (the
// error). When w has SetWriteDeadline (a net.Conn, a pollable tty or pty),
// no write blocks past the next reading's time, so ctx is seen within a
// period and a stalled reader only fills the buffer; otherwise a stalled
// reader blocks Play until the caller closes w.
func (b *Board) Play(ctx context.Context, w io.Writer) error {
	if b.Rate <= 0 {
		return errors.New("serialtest: rate must be > 0")
	}
	size := b.Buffer
	if size <= 0 {
		size = DefaultBuffer
	}
	dw, _ := w.(interface{ SetWriteDeadline(time.Time) error })
	if dw != nil && dw.SetWriteDeadline(time.Time{}) != nil {
		dw = nil // e.g. os.ErrNoDeadline: a file that is not pollable
	}
	period := time.Duration(float64(time.Second) / b.Rate)
	pending := make([]byte, 0, size)
	if b.Header {
		pending = append(pending, Header...)
	}
	var line []byte
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var next uint64 // the next reading to print
	for {
		// Print every reading whose time has come: after a stall of this
		// process they go out in a burst, as a board's UART kept sending.
		due := uint64(time.Since(start)/period) + 1
		for ; next < due; next++ {
			line = AppendLine(line[:0], next, b.Rate)
			if len(pending)+len(line) > size {
				b.dropped.Add(1)
				continue
			}
			pending = append(pending, line...)
			b.lines.Add(1)
		}
		nextAt := start.Add(time.Duration(next) * period)
		if len(pending) > 0 {
			if dw != nil {
				_ = dw.SetWriteDeadline(nextAt)
			}
			n, err := w.Write(pending)
			pending = append(pending[:0], pending[n:]...)
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
		}
		timer.Reset(time.Until(nextAt))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}
