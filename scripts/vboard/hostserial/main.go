// Command hostserial is the host end of the virtual board's USB serial
// adapter. scripts/vboard/run.sh starts it before qemu:
//
//	hostserial -socket PATH -ctl SHAREDIR/ctl
//
// qemu connects to PATH as a client (-chardev socket,path=PATH,reconnect=1)
// and plugs its usb-serial device while connected: /dev/ttyUSB0 through the
// real ftdi_sio in the guest. hostserial then plays a 3-axis CSV board at
// 100 Hz into the connection (sensors/serial/serialtest: a header line, then
// "sin,cos,count" readings on its own clock, a 512-byte transmit buffer that
// drops readings while the guest does not read, as an FTDI does). It reads
// and discards everything the guest sends: qemu stalls the whole VM when the
// guest's writes (a cooked tty's echo) are not drained.
//
// A guest asks for an unplug by writing a duration ("2s") to DIR/serial-unplug
// (write another name and rename it, so the file is never seen half
// written). hostserial deletes the file, drops the connection and closes
// its socket for that long, so qemu's reconnects fail: qemu detaches the USB
// device when the chardev closes and attaches it again once a reconnect
// succeeds (it retries every second). SIGTERM or SIGINT stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/sensors/serial/serialtest"
)

// UnplugFile is the name, in the -ctl directory, of an unplug request.
const UnplugFile = "serial-unplug"

// defaultUnplug is the unplug time when the request holds no duration.
const defaultUnplug = 2 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run parses the flags and feeds until ctx ends; it returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fl := flag.NewFlagSet("hostserial", flag.ContinueOnError)
	fl.SetOutput(stderr)
	socket := fl.String("socket", "", "unix socket to listen on; qemu connects to it (-chardev socket,path=…,reconnect=1) (required)")
	ctl := fl.String("ctl", "", "directory watched for "+UnplugFile+" (content: a duration); empty: no unplugs")
	rate := fl.Float64("rate", 100, "readings per second")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *socket == "" || fl.NArg() > 0 || *rate <= 0 {
		fmt.Fprintln(stderr, "usage: hostserial -socket PATH [-ctl DIR] [-rate HZ]")
		return 2
	}
	f := &feeder{
		socket: *socket, ctl: *ctl, rate: *rate, poll: 100 * time.Millisecond,
		log: slog.New(slog.NewTextHandler(stderr, nil)),
	}
	if err := f.serve(ctx); err != nil {
		f.log.Error("hostserial failed", "err", err)
		return 1
	}
	f.log.Info("stopped")
	return 0
}

// feeder serves one board on a unix socket. serve owns every goroutine it
// starts (the ctl watcher, the accept loop, each connection's reader) and
// waits for them before it returns.
type feeder struct {
	socket string
	ctl    string
	rate   float64
	poll   time.Duration // how often ctl is looked at
	log    *slog.Logger
}

// serve feeds until ctx ends (nil) or the socket cannot be listened on.
func (f *feeder) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	unplugs := make(chan time.Duration)
	var wg sync.WaitGroup
	if f.ctl != "" {
		wg.Add(1)
		go func() { defer wg.Done(); f.watch(ctx, unplugs) }()
	}
	err := f.loop(ctx, unplugs)
	cancel()
	wg.Wait()
	return err
}

// loop alternates plugged (listening) and unplugged (no socket) phases.
func (f *feeder) loop(ctx context.Context, unplugs <-chan time.Duration) error {
	for {
		d, err := f.plugged(ctx, unplugs)
		if err != nil || ctx.Err() != nil {
			return err
		}
		f.log.Info("unplugged", "for", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		f.log.Info("plugged back in")
	}
}

// plugged listens and feeds connections until an unplug is asked (its
// duration), ctx ends (0, nil) or accepting fails.
func (f *feeder) plugged(ctx context.Context, unplugs <-chan time.Duration) (time.Duration, error) {
	// A socket left by a killed run would make Listen fail; anything else at
	// the path is not ours to remove.
	if fi, err := os.Lstat(f.socket); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		_ = os.Remove(f.socket)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: f.socket, Net: "unix"})
	if err != nil {
		return 0, err
	}
	ln.SetUnlinkOnClose(true)
	f.log.Info("listening", "socket", f.socket)
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- f.accept(cctx, ln) }()
	var d time.Duration
	select {
	case d = <-unplugs:
	case <-ctx.Done():
	case err = <-errc:
		cancel()
		_ = ln.Close()
		return 0, err
	}
	// The socket goes first, so a guest that sees the connection drop
	// cannot reconnect before the unplug is over.
	_ = ln.Close()
	cancel()
	<-errc
	return d, nil
}

// accept feeds one connection at a time (qemu is the only client) until
// the listener is closed (nil once ctx has ended) or fails.
func (f *feeder) accept(ctx context.Context, ln *net.UnixListener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		f.feed(ctx, c)
	}
}

// feed plays the board into c until the guest disconnects or ctx ends,
// draining what the guest sends, and closes c.
func (f *feeder) feed(ctx context.Context, c net.Conn) {
	f.log.Info("guest connected")
	// The smallest send buffer the kernel allows (a few kB of accounting,
	// about a hundred bytes of readings): while the guest's port is closed
	// qemu stops reading, and readings must then be dropped at the board's
	// 512 bytes, as an FTDI drops them, not pile up in a 200 kB socket
	// buffer that the next open would get as tens of seconds of stale lines.
	if uc, ok := c.(*net.UnixConn); ok {
		_ = uc.SetWriteBuffer(1)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var rx atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel() // the guest went away: stop playing
		n, _ := io.Copy(io.Discard, c)
		rx.Store(n)
	}()
	b := &serialtest.Board{Rate: f.rate, Header: true}
	err := b.Play(ctx, c)
	_ = c.Close() // ends the reader
	<-done
	attrs := []any{"lines", b.Lines(), "dropped", b.Dropped(), "bytes_from_guest", rx.Load()}
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		attrs = append(attrs, "err", err)
	}
	f.log.Info("guest disconnected", attrs...)
}

// watch polls ctl for an unplug request, removes it and hands its duration
// to the feeder (blocking until the feeder takes it, so a request made
// while unplugged is served once the board is back).
func (f *feeder) watch(ctx context.Context, unplugs chan<- time.Duration) {
	path := filepath.Join(f.ctl, UnplugFile)
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue // no request (or not readable yet)
		}
		if err := os.Remove(path); err != nil {
			f.log.Warn("cannot remove the unplug request; ignoring it", "err", err)
			continue
		}
		d := defaultUnplug
		if s := strings.TrimSpace(string(b)); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v < 0 {
				f.log.Warn("unplug request is not a duration; using the default", "content", s, "default", defaultUnplug)
			} else {
				d = v
			}
		}
		f.log.Info("unplug requested", "for", d)
		select {
		case unplugs <- d:
		case <-ctx.Done():
			return
		}
	}
}
