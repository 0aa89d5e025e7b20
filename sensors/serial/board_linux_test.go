//go:build vboard

// Board cases (scripts/vboard): the serial source against real USB serial
// drivers. ftdi_sio drives qemu's usb-serial adapter, whose other end is
// scripts/vboard/hostserial on the host (a 3-axis CSV board at 100 Hz);
// cdc_acm (an Arduino's native USB) drives a configfs CDC-ACM gadget on
// dummy_hcd, whose device side (/dev/ttyGS0) this test plays the same board
// into. Each case: axes and rate detected within 2 %, no echo of what the
// board prints once the port is open, unplug and replug recovered through
// agent/hub's restart loop, and `edge-agent sample` writing a CSV header
// with the detected axes.

package serial

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/internal/vboard"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/serial/serialtest"
)

const (
	boardRate = 100.0
	// backlog is how many readings the CDC board prints before the host
	// opens its port (1.5 s, ~3 kB).
	backlog = 150
)

// TestBoardFTDI: /dev/ttyUSB0 through ftdi_sio, fed by hostserial. Its
// baud rate does not matter to qemu's chardev. An unplug is asked of the
// host through $VBOARD_SHARE/ctl; qemu detaches the adapter and attaches it
// again when hostserial accepts its reconnect.
func TestBoardFTDI(t *testing.T) {
	const port = "/dev/ttyUSB0"
	waitPath(t, port, 15*time.Second)
	listed(t, port, "USB 0403:6001") // qemu's usb-serial is an FT232
	log, opened := openedSignal()
	src, err := NewSource("board", Config{Port: port}, sensors.Env{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, sub := runHub(t, src)
	select {
	case <-opened:
	case <-time.After(20 * time.Second):
		t.Fatalf("port not opened: %+v", h.Stats()[0])
	}
	detect(t, src, sub)
	unplugReplug(t, h, sub, func() {
		ctl := filepath.Join(os.Getenv("VBOARD_SHARE"), "ctl")
		tmp := filepath.Join(ctl, ".serial-unplug")
		if err := os.WriteFile(tmp, []byte("1s\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(ctl, "serial-unplug")); err != nil {
			t.Fatal(err)
		}
	}, func() {}) // hostserial plugs it back after 1 s
	sub.Close()
	h.Close()
	waitPath(t, port, 15*time.Second)
	sampleHeader(t, port)
}

// TestBoardCDCACM: /dev/ttyACM0 through cdc_acm, a CDC-ACM gadget on
// dummy_hcd as the board. The gadget buffers kilobytes while the host port
// is closed, so the first open gets a stale backlog in one burst (rate
// detection must not be fooled by it) and, with the port's first-open
// termios cooked, whatever the tty echoes comes back to the gadget, where
// it is checked. Unplug is unbinding the gadget from its UDC.
func TestBoardCDCACM(t *testing.T) {
	g := newGadget(t)
	dev := startDevice(t, g.ttyGS)
	g.bind(t)
	port := g.hostPort(t, 15*time.Second)
	listed(t, port, "USB 2341:8037 CSV board serial "+gadgetSerial)
	// Let the board print while the host port is closed: the gadget holds
	// it (kilobytes, unlike an Arduino) and delivers it at the first open.
	vboard.WaitFor(t, 20*time.Second, func() error {
		if n := dev.lines(); n < backlog {
			return fmt.Errorf("the board printed %d readings into the gadget, want %d", n, backlog)
		}
		return nil
	})

	log, opened := openedSignal()
	src, err := NewSource("board", Config{Port: port}, sensors.Env{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, sub := runHub(t, src)
	var mark uint64
	select {
	case <-opened:
		mark = dev.lines() // readings queued from here on reach a raw tty
	case <-time.After(20 * time.Second):
		t.Fatalf("port not opened: %+v", h.Stats()[0])
	}
	detect(t, src, sub)
	echoed := dev.echoed()
	t.Logf("the host sent %d bytes back to the board (echo of the backlog at the port's first open), readings %v; raw from reading %d: %q",
		len(echoed), echoCounters(echoed), mark, echoed[:min(len(echoed), 400)])
	for _, c := range echoCounters(echoed) {
		if c >= mark {
			t.Fatalf("reading %d, printed after the port was opened (from %d on), came back to the board: the tty echoed in raw mode", c, mark)
		}
	}

	unplugReplug(t, h, sub, func() { g.unbind(t) }, func() { g.bind(t) })
	sub.Close()
	h.Close()
	sampleHeader(t, g.hostPort(t, 15*time.Second))
}

// TestBoardListPortsLeavesUARTsAlone: listing the serial ports (edge-agent
// sensors) opens none of them. go.bug.st/serial's enumerator opened every
// ttyS* to tell real UARTs from placeholders, which set them to 9600 baud
// raw: on amd64 the board's console is ttyS0, as a Pi's can be.
func TestBoardListPortsLeavesUARTsAlone(t *testing.T) {
	uarts, _ := filepath.Glob("/dev/ttyS*")
	before := map[string]*unix.Termios{}
	for _, u := range uarts {
		if tio, err := termiosOf(u); err == nil { // placeholders cannot be opened
			before[u] = tio
		}
	}
	ports, err := ListPorts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ports %+v; %d UARTs with a termios", ports, len(before))
	for u, b := range before {
		a, err := termiosOf(u)
		if err != nil {
			t.Fatal(err)
		}
		if *a != *b {
			t.Errorf("listing changed %s's termios: %+v → %+v", u, *b, *a)
		}
	}
}

// termiosOf reads a tty's settings without changing them (O_NONBLOCK: no
// wait for carrier; O_NOCTTY: not our controlling tty).
func termiosOf(path string) (*unix.Termios, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return unix.IoctlGetTermios(fd, unix.TCGETS)
}

// listed checks that ListPorts shows the port with its USB details.
func listed(t *testing.T, port, desc string) {
	t.Helper()
	ports, err := ListPorts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p.Path == port {
			if !strings.HasPrefix(p.Description, desc) {
				t.Errorf("%s listed as %q, want %q…", port, p.Description, desc)
			}
			return
		}
	}
	t.Errorf("%s not listed: %+v", port, ports)
}

// runHub runs src through agent/hub as the agent does, with restarts fast
// enough for a short case. Both are closed at cleanup (again: idempotent).
func runHub(t *testing.T, src sensors.Source) (*hub.Hub, sensors.Subscription) {
	t.Helper()
	h := hub.New(hub.Options{Restart: retry.Policy{Min: 100 * time.Millisecond, Max: 300 * time.Millisecond}})
	t.Cleanup(h.Close)
	if err := h.Add(src); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe("board", sensors.SubscribeOptions{Queue: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return h, sub
}

// detect reads rows until the rate is detected and checks rate, axes and
// what the rows carry.
func detect(t *testing.T, src *Source, sub sensors.Subscription) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	rows := 0
	for src.Info().Rate == 0 {
		select {
		case s := <-sub.C():
			rows++
			checkRow(t, s)
		case <-deadline:
			t.Fatalf("rate not detected after %d rows (%d malformed lines)", rows, src.Malformed())
		}
	}
	info := src.Info()
	if math.Abs(info.Rate-boardRate)/boardRate > 0.02 {
		t.Errorf("detected %g Hz, the board prints at %g Hz", info.Rate, boardRate)
	}
	if got := strings.Join(info.Axes, ","); got != "axis0,axis1,axis2" {
		t.Errorf("axes %q, want 3 detected", got)
	}
	t.Logf("%g Hz, %d axes after %d rows; %d lines skipped as malformed", info.Rate, len(info.Axes), rows, src.Malformed())
}

// checkRow: sine, cosine and the board's counter.
func checkRow(t *testing.T, s sensors.Sample) {
	t.Helper()
	v := s.Values
	if len(v) != serialtest.Axes || math.Abs(v[0]) > 1 || math.Abs(v[1]) > 1 || v[2] < 0 || v[2] != math.Trunc(v[2]) ||
		math.Abs(v[0]*v[0]+v[1]*v[1]-1) > 1e-3 {
		t.Fatalf("row %v is not what the board printed", v)
	}
}

// unplugReplug unplugs the board while the hub runs it, waits until the hub
// has seen the source fail, plugs it back and waits for rows from a new Run
// (Seq starts again) of the hub's restart loop.
func unplugReplug(t *testing.T, h *hub.Hub, sub sensors.Subscription, unplug, replug func()) {
	t.Helper()
	r0 := h.Stats()[0].Restarts
	unplug()
	deadline := time.After(20 * time.Second)
	for h.Stats()[0].Restarts == r0 {
		select {
		case <-sub.C():
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the source did not fail after the unplug: %+v", h.Stats()[0])
		}
	}
	t.Logf("unplugged: %s", h.Stats()[0].LastError)
	replug()
	// Rows queued before the failure are still in the subscription (the hub
	// delivers them before it counts the restart); a new Run's rows start
	// again at Seq 0.
	deadline = time.After(30 * time.Second)
	fresh := 0
	for fresh < 50 {
		select {
		case s := <-sub.C():
			if fresh > 0 || s.Seq < 10 {
				checkRow(t, s)
				fresh++
			}
		case <-deadline:
			t.Fatalf("%d rows after the replug: %+v", fresh, h.Stats()[0])
		}
	}
	if st := h.Stats()[0]; st.State != hub.StateRunning {
		t.Fatalf("after the replug: %+v", st)
	}
}

// sampleHeader runs `edge-agent sample` (the real binary and code path) on
// the port and checks that the CSV names the detected axes (issue 12,
// defect 4) and that every row has a value per axis.
func sampleHeader(t *testing.T, port string) {
	t.Helper()
	agent := os.Getenv("VBOARD_AGENT")
	if agent == "" {
		t.Fatal("VBOARD_AGENT is not set")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	body := fmt.Sprintf("state_dir: %s\nstatus: { listen: \"\" }\nsensors:\n  - name: board\n    kind: serial\n    serial: { port: %q }\n",
		filepath.Join(dir, "state"), port)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "board.csv")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(ctx, agent, "sample", "-config", cfg, "-sensor", "board", "-seconds", "0.5", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("edge-agent sample: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll() // every row as wide as the header
	if err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if got, want := strings.Join(rows[0], ","), "timestamp,axis0,axis1,axis2"; got != want {
		t.Fatalf("CSV header %q, want %q", got, want)
	}
	if len(rows) < 11 {
		t.Fatalf("%d rows in 0.5 s at %g Hz", len(rows)-1, boardRate)
	}
}

// echoCounters returns the readings found whole in echoed bytes: a line
// whose sine and cosine are those of its reading number (a cooked tty
// echoes fragments too, which this ignores: only a whole reading proves
// what was echoed).
func echoCounters(b []byte) []uint64 {
	var out []uint64
	for _, line := range strings.FieldsFunc(string(b), func(r rune) bool { return r == '\r' || r == '\n' }) {
		f := strings.Split(line, ",")
		if len(f) != serialtest.Axes {
			continue
		}
		c, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			continue
		}
		want := strings.TrimSuffix(string(serialtest.AppendLine(nil, c, boardRate)), "\r\n")
		if line == want {
			out = append(out, c)
		}
	}
	return out
}

// waitPath waits for a device node to appear.
func waitPath(t *testing.T, path string, within time.Duration) {
	t.Helper()
	vboard.WaitFor(t, within, func() error {
		_, err := os.Stat(path)
		return err
	})
}

// gadget is a CDC-ACM USB gadget in configfs (the board's side), plugged
// into dummy_hcd's virtual UDC, whose host side cdc_acm binds.
type gadget struct {
	dir   string // configfs directory
	udc   string // e.g. dummy_udc.0
	ttyGS string // the device side's tty
}

const gadgetSerial = "vboard-serial"

func newGadget(t *testing.T) *gadget {
	t.Helper()
	for _, m := range []string{"dummy_hcd", "libcomposite", "usb_f_acm", "cdc_acm"} {
		vboard.Modprobe(t, m)
	}
	const cfs = "/sys/kernel/config"
	if _, err := os.Stat(cfs + "/usb_gadget"); err != nil {
		if err := syscall.Mount("configfs", cfs, "configfs", 0, ""); err != nil {
			t.Fatalf("mount configfs: %v", err)
		}
		t.Cleanup(func() { _ = syscall.Unmount(cfs, 0) })
	}
	udcs, err := os.ReadDir("/sys/class/udc")
	if err != nil || len(udcs) == 0 {
		t.Fatalf("no UDC (dummy_hcd): %v", err)
	}
	g := &gadget{dir: cfs + "/usb_gadget/" + gadgetSerial, udc: udcs[0].Name()}
	mkdir := func(p string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(g.dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.Remove(filepath.Join(g.dir, p)); err != nil {
				t.Errorf("configfs: %v", err)
			}
		})
	}
	mkdir("")
	g.write(t, "idVendor", "0x2341") // Arduino
	g.write(t, "idProduct", "0x8037")
	mkdir("strings/0x409")
	g.write(t, "strings/0x409/manufacturer", "edge-agent vboard")
	g.write(t, "strings/0x409/product", "CSV board")
	g.write(t, "strings/0x409/serialnumber", gadgetSerial)
	mkdir("configs/c.1")
	mkdir("functions/acm.usb0")
	link := filepath.Join(g.dir, "configs/c.1/acm.usb0")
	if err := os.Symlink(filepath.Join(g.dir, "functions/acm.usb0"), link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.unbind(t)
		if err := os.Remove(link); err != nil {
			t.Errorf("configfs: %v", err)
		}
	})
	num, err := os.ReadFile(filepath.Join(g.dir, "functions/acm.usb0/port_num"))
	if err != nil {
		t.Fatal(err)
	}
	g.ttyGS = "/dev/ttyGS" + strings.TrimSpace(string(num))
	waitPath(t, g.ttyGS, 5*time.Second)
	return g
}

func (g *gadget) write(t *testing.T, p, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, p), []byte(v+"\n"), 0o644); err != nil {
		t.Fatalf("configfs %s: %v", p, err)
	}
}

// bind plugs the gadget in; unbind unplugs it (idempotent).
func (g *gadget) bind(t *testing.T) { g.write(t, "UDC", g.udc) }
func (g *gadget) unbind(t *testing.T) {
	t.Helper()
	if b, _ := os.ReadFile(filepath.Join(g.dir, "UDC")); strings.TrimSpace(string(b)) != "" {
		g.write(t, "UDC", "")
	}
}

// hostPort waits for cdc_acm to bind the gadget and returns its tty, found
// by the gadget's serial number (not by assuming ttyACM0).
func (g *gadget) hostPort(t *testing.T, within time.Duration) string {
	t.Helper()
	var port string
	vboard.WaitFor(t, within, func() error {
		ttys, _ := filepath.Glob("/sys/class/tty/ttyACM*")
		for _, tty := range ttys {
			// device → the USB interface; its parent is the USB device.
			iface, err := filepath.EvalSymlinks(filepath.Join(tty, "device"))
			if err != nil {
				continue
			}
			sn, _ := os.ReadFile(filepath.Join(filepath.Dir(iface), "serial"))
			dev := "/dev/" + filepath.Base(tty)
			if strings.TrimSpace(string(sn)) == gadgetSerial {
				if _, err := os.Stat(dev); err == nil {
					port = dev
					return nil
				}
			}
		}
		return fmt.Errorf("cdc_acm did not bind the gadget (ttys: %v)", ttys)
	})
	return port
}

// device is the board behind the gadget: it opens the gadget's tty raw and
// plays serialtest.Board into it, and keeps what the host sends back. An
// unbind hangs the tty up; the device then reopens it and starts a fresh
// board, as a board does when it is plugged back in.
type device struct {
	path string

	mu    sync.Mutex
	board *serialtest.Board
	echo  bytes.Buffer
}

func startDevice(t *testing.T, path string) *device {
	t.Helper()
	d := &device{path: path}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func (d *device) lines() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.board == nil {
		return 0
	}
	return d.board.Lines()
}

func (d *device) echoed() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.echo.Bytes())
}

func (d *device) run(ctx context.Context) {
	for ctx.Err() == nil {
		_ = d.playOnce(ctx) // unplugged, or not openable yet: try again
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// playOnce plays one board until ctx ends or the tty hangs up.
func (d *device) playOnce(ctx context.Context) error {
	f, err := os.OpenFile(d.path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := makeRaw(f); err != nil {
		return err
	}
	b := &serialtest.Board{Rate: boardRate, Header: true}
	d.mu.Lock()
	d.board = b
	d.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel() // a hang-up reads as EOF: stop this board
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			d.mu.Lock()
			d.echo.Write(buf[:n])
			d.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	err = b.Play(ctx, f)
	_ = f.Close() // ends the reader
	<-done
	return err
}

// makeRaw is cfmakeraw(3) on f, through the runtime's poller-aware
// descriptor (f.Fd would switch f to blocking mode and lose deadlines).
func makeRaw(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	if err := sc.Control(func(fd uintptr) {
		var tio *unix.Termios
		if tio, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS); terr != nil {
			return
		}
		tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		tio.Cflag &^= unix.CSIZE | unix.PARENB
		tio.Cflag |= unix.CS8
		tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
		terr = unix.IoctlSetTermios(int(fd), unix.TCSETS, tio)
	}); err != nil {
		return err
	}
	if terr != nil {
		return fmt.Errorf("raw %s: %w", f.Name(), terr)
	}
	return nil
}
