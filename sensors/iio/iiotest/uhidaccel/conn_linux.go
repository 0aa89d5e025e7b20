package uhidaccel

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fdConn is /dev/uhid read by a thread that waits in the kernel itself
// (poll(2), then read(2)) instead of through the Go runtime's poller: the
// driver blocks a sysfs reader until the device answers its GET_REPORT, and
// under emulation every hand-off between threads costs, so the answer should
// be one wake-up away. Read must be called from one goroutine, which it
// locks to its thread; Close makes that Read return os.ErrClosed within
// pollSlice and close the descriptor. Writes may come from any goroutine.
type fdConn struct {
	mu     sync.RWMutex // held for reading around I/O, for writing to close the fd
	fd     int
	closed atomic.Bool
	locked bool // the reader's goroutine is locked to its thread
}

const pollSlice = 100 // ms a Read waits before it looks at closed again

func openFD(path string) (*fdConn, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &fdConn{fd: fd}, nil
}

func (c *fdConn) Read(b []byte) (int, error) {
	if !c.locked {
		runtime.LockOSThread() // for the reader's lifetime: it exits on error
		c.locked = true
	}
	for {
		if c.closed.Load() {
			c.mu.Lock()
			if c.fd >= 0 {
				_ = unix.Close(c.fd)
				c.fd = -1
			}
			c.mu.Unlock()
			return 0, os.ErrClosed
		}
		c.mu.RLock()
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, pollSlice)
		if err == nil && n > 0 {
			var m int
			m, err = unix.Read(c.fd, b)
			c.mu.RUnlock()
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("read uhid: %w", err)
			}
			return m, nil
		}
		c.mu.RUnlock()
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, fmt.Errorf("poll uhid: %w", err)
		}
	}
}

func (c *fdConn) Write(b []byte) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() || c.fd < 0 {
		return 0, os.ErrClosed
	}
	for {
		n, err := unix.Write(c.fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("write uhid: %w", err)
		}
		return n, nil
	}
}

// release closes the descriptor of a conn no reader ever used.
func (c *fdConn) release() {
	c.closed.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
}

// Close stops the reader; the descriptor is closed by the reader's last
// Read (so it is never closed under a poll or read in progress).
func (c *fdConn) Close() error {
	c.closed.Store(true)
	return nil
}
