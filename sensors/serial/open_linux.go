package serial

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	bugserial "go.bug.st/serial"
	"golang.org/x/sys/unix"

	"github.com/edge-agent/edge-agent/internal/retry"
)

// openPort opens the board's port raw and with nothing queued in either
// direction. Errors that retrying cannot fix (the path is a regular file or
// a non-tty device, the line settings are refused) are retry.Permanent, so
// the hub reports them at once instead of backing off forever; a missing
// node is not (the board is unplugged and may come back).
//
// Echo. A tty starts cooked, with ECHO on: the kernel gives a USB serial or
// ACM port its default termios the first time it is opened after boot (it
// keeps the last termios per port number after that, across close and
// replug). Whatever the board sends while the tty is cooked goes straight
// back to the board. go.bug.st/serial already does the part user space can
// do: it opens with O_NOCTTY|O_NDELAY and sets raw mode (ECHO, ICANON, ISIG,
// IXON, OPOST off) with its first ioctls, before modem lines, speed or
// anything else. What it cannot close is the open() itself: the driver
// starts reading from the device inside open(), and a board that buffered
// output while the port was closed (an FTDI's FIFO, a CDC gadget's queue)
// delivers it at once, and n_tty echoes it before the first ioctl can run.
// No ioctl reaches a tty before it is open, so that first-open echo cannot
// be prevented from here (a udev rule running `stty raw` at plug-in has the
// same race). Wrapping the open ourselves with an earlier TCSETS would only
// repeat the library's sequence, so instead, once raw mode is set, we flush
// the output queue (echo the driver has not sent yet is dropped) and then
// the input queue (the stale backlog: its arrival times would spoil rate
// detection). Every later open of the same port starts raw and echoes
// nothing.
func openPort(path string, baud int, sysRoot string) (bugserial.Port, error) {
	if err := checkNode(path, sysRoot); err != nil {
		return nil, err
	}
	port, err := bugserial.Open(path, &bugserial.Mode{BaudRate: baud})
	if err != nil {
		var pe *bugserial.PortError
		if errors.As(err, &pe) {
			switch pe.Code() {
			case bugserial.InvalidSpeed, bugserial.InvalidDataBits, bugserial.InvalidParity, bugserial.InvalidStopBits:
				return nil, retry.Permanent(err)
			}
		}
		return nil, err
	}
	if err := port.ResetOutputBuffer(); err != nil {
		_ = port.Close()
		return nil, fmt.Errorf("flush output: %w", err)
	}
	if err := port.ResetInputBuffer(); err != nil {
		_ = port.Close()
		return nil, fmt.Errorf("flush input: %w", err)
	}
	return port, nil
}

// checkNode looks at the port's node without opening it (an open starts the
// device). A missing node is retryable; anything that is not a character
// device, or a character device that sysfs places in another class than
// tty (/dev/null is "mem", /dev/video0 "video4linux"), is permanent. Nodes
// sysfs does not list (pty slaves, a container without /sys) pass; the open
// then decides.
func checkNode(path, sysRoot string) error {
	// Messages leave out the path: the caller's "open PATH:" names it.
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no device (unplugged?): %w", err)
		}
		return err
	}
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return retry.Permanent(fmt.Errorf("%s, not a serial port (a tty character device)", describeMode(fi.Mode())))
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	devno := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	class, err := filepath.EvalSymlinks(filepath.Join(sysRoot, "dev", "char", devno, "subsystem"))
	if err != nil {
		return nil
	}
	if c := filepath.Base(class); c != "tty" {
		return retry.Permanent(fmt.Errorf("a %s device (%s), not a serial port (a tty)", c, devno))
	}
	return nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a device"
}
