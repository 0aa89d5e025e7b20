package serial

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/serial/serialtest"
)

// TestOpenMismatchIsPermanent: a port path that can never be a serial port
// fails Run with a permanent error naming what the path is; a missing node
// (an unplugged board) stays retryable.
func TestOpenMismatchIsPermanent(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		port      string
		permanent bool
		want      string
	}{
		{name: "missing node", port: filepath.Join(dir, "ttyACM0"), want: "unplugged?"},
		{name: "dangling by-id link", port: symlink(t, filepath.Join(dir, "gone"), filepath.Join(dir, "by-id")), want: "unplugged?"},
		{name: "regular file", port: file, permanent: true, want: "a regular file, not a serial port"},
		{name: "directory", port: dir, permanent: true, want: "a directory, not a serial port"},
		{name: "fifo", port: fifo, permanent: true, want: "a FIFO, not a serial port"},
		{name: "character device of another class", port: "/dev/null", permanent: true, want: "a mem device (1:3), not a serial port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.port == "/dev/null" {
				if _, err := os.Stat("/sys/dev/char/1:3/subsystem"); err != nil {
					t.Skip("needs sysfs (/sys/dev/char) to tell /dev/null's class:", err)
				}
			}
			src, err := NewSource("board", Config{Port: tc.port}, sensors.Env{})
			if err != nil {
				t.Fatal(err)
			}
			err = src.Run(context.Background(), make(chan sensors.Sample))
			if err == nil {
				t.Fatal("Run returned nil")
			}
			if retry.IsPermanent(err) != tc.permanent {
				t.Fatalf("permanent = %v, want %v: %v", retry.IsPermanent(err), tc.permanent, err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if !tc.permanent && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("error %v does not wrap ErrNotExist", err)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// TestHubStopsOnPermanent: through the hub, a permanent mismatch is reported
// once (state error, the reason) and not retried.
func TestHubStopsOnPermanent(t *testing.T) {
	src, err := NewSource("board", Config{Port: t.TempDir()}, sensors.Env{})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Options{Restart: retry.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}})
	defer h.Close()
	if err := h.Add(src); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("board", sensors.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := h.Stats()[0]
		if st.State == hub.StateError && st.LastError != "" {
			if st.Restarts != 0 || !bytes.Contains([]byte(st.LastError), []byte("a directory, not a serial port")) {
				t.Fatalf("stat %+v: want no restarts and the reason", st)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no error state: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOpenRawNoEcho: the port is raw once Run has opened it, even when the
// tty was left cooked with ECHO on (a port's first open after boot): lines
// the board prints after that are never sent back to it.
func TestOpenRawNoEcho(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Skip("needs a pseudo-terminal (/dev/ptmx on a devpts mount):", err)
	}
	defer master.Close()
	path := slave.Name()
	// The default termios of a fresh tty: cooked, echoing.
	sc, err := slave.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var terr error
	if err := sc.Control(func(fd uintptr) {
		var tio *unix.Termios
		if tio, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS); terr != nil {
			return
		}
		tio.Lflag |= unix.ECHO | unix.ICANON | unix.ECHOE | unix.ECHOK
		tio.Oflag |= unix.OPOST
		terr = unix.IoctlSetTermios(int(fd), unix.TCSETS, tio)
	}); err != nil || terr != nil {
		t.Fatal(err, terr)
	}
	_ = slave.Close()

	log, opened := openedSignal()
	src, err := NewSource("board", Config{Port: path}, sensors.Env{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, wait := run(ctx, src, 1024)
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("port not opened")
	}
	// Whatever the master can read now was echoed before raw mode (the pty
	// had no reader yet): read it away, then watch for new echo.
	var echoed bytes.Buffer
	var mu sync.Mutex
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			echoed.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	board := &serialtest.Board{Rate: 200}
	bctx, bcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = board.Play(bctx, master) }()
	for n := 0; n < 60; {
		select {
		case <-out:
			n++
		case <-time.After(20 * time.Second):
			t.Fatal("no rows")
		}
	}
	bcancel()
	wg.Wait()
	cancel()
	if err := drainUntilDone(out, wait); err != nil {
		t.Fatal(err)
	}
	_ = master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	<-readDone
	mu.Lock()
	defer mu.Unlock()
	if echoed.Len() != 0 {
		t.Fatalf("the tty echoed %d bytes back to the board: %q", echoed.Len(), echoed.Bytes()[:min(echoed.Len(), 80)])
	}
}
