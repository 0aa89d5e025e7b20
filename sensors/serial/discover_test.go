package serial

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestListPorts runs the listing against a fake sysfs and /dev: a real
// UART, an 8250 placeholder (UART type 0, skipped: telling it apart must not
// open it), a CDC-ACM board and an FTDI adapter with their USB details and
// by-id name, a console tty and a port whose node is gone.
func TestListPorts(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	mk := func(p string, files map[string]string) string {
		t.Helper()
		d := filepath.Join(root, p)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for n, v := range files {
			if err := os.WriteFile(filepath.Join(d, n), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	ln := func(target, link string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	busUSB, busUSBSerial, busPlatform := mk("sys/bus/usb", nil), mk("sys/bus/usb-serial", nil), mk("sys/bus/platform", nil)
	// ttyS0: a UART; ttyS1: a placeholder.
	uart := mk("sys/devices/platform/serial8250", nil)
	ln(busPlatform, filepath.Join(uart, "subsystem"))
	ln(uart, filepath.Join(mk("sys/class/tty/ttyS0", map[string]string{"type": "4"}), "device"))
	ln(uart, filepath.Join(mk("sys/class/tty/ttyS1", map[string]string{"type": "0"}), "device"))
	// ttyACM0: the device link is the USB interface.
	mk("sys/devices/usb1/1-1", map[string]string{"idVendor": "2341", "idProduct": "0043", "product": "Arduino Uno", "serial": "8573"})
	acmIf := mk("sys/devices/usb1/1-1/1-1:1.0", nil)
	ln(busUSB, filepath.Join(acmIf, "subsystem"))
	ln(acmIf, filepath.Join(mk("sys/class/tty/ttyACM0", nil), "device"))
	// ttyUSB0: the device link is the usb-serial port below the interface.
	mk("sys/devices/usb1/1-2", map[string]string{"idVendor": "0403", "idProduct": "6001", "product": "FT232R USB UART"})
	ftdiPort := mk("sys/devices/usb1/1-2/1-2:1.0/ttyUSB0", nil)
	ln(busUSBSerial, filepath.Join(ftdiPort, "subsystem"))
	ln(ftdiPort, filepath.Join(mk("sys/class/tty/ttyUSB0", nil), "device"))
	// Not serial ports, or no node.
	mk("sys/class/tty/tty1", nil)
	mk("sys/class/tty/console", nil)
	mk("sys/class/tty/ttyACM1", nil)
	for _, n := range []string{"ttyS0", "ttyS1", "ttyACM0", "ttyUSB0", "tty1"} {
		mk("dev", map[string]string{n: ""})
	}
	ln("../../ttyACM0", filepath.Join(dev, "serial", "by-id", "usb-Arduino_Uno_8573-if00"))

	got, err := listPorts(sys, dev)
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{
		{Path: filepath.Join(dev, "ttyACM0"), Description: "USB 2341:0043 Arduino Uno serial 8573, " + filepath.Join(dev, "serial", "by-id", "usb-Arduino_Uno_8573-if00")},
		{Path: filepath.Join(dev, "ttyS0")},
		{Path: filepath.Join(dev, "ttyUSB0"), Description: "USB 0403:6001 FT232R USB UART"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ports\n got %+v\nwant %+v", got, want)
	}
	if _, err := listPorts(filepath.Join(root, "nosys"), dev); err == nil {
		t.Fatal("no error without /sys/class/tty")
	}
}
