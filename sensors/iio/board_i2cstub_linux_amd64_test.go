//go:build vboard

// The i2c-stub cases exist on x86-64 only: Debian's arm64 kernel does not
// build i2c-stub, and inv-mpu6050 probed without a device tree needs an
// IRQ descriptor that only x86 has for IRQ 0 (docs/protocols/hardware.md
// §1.9).

package iio

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/vboard"
	"github.com/edge-agent/edge-agent/sensors"
)

// i2cChip is a register file on i2c-stub that a real driver probes.
type i2cChip struct {
	driver, name string // module, and the i2c device name (= the IIO name)
	addr         int
	regs         map[int]byte // preloaded registers
	raw          [3]int64     // the counts the data registers hold
}

// TestBoardI2CStub: the MPU6050 and LIS3DH drivers probe register files on
// i2c-stub (no IRQ: polling only), and the source, finding them by name,
// reads values matching the registers.
func TestBoardI2CStub(t *testing.T) {
	chips := []i2cChip{
		{driver: "inv-mpu6050-i2c", name: "mpu6050", addr: 0x68, raw: [3]int64{1024, -1024, 16384},
			// WHO_AM_I, then ACCEL_[XYZ]OUT big-endian from 0x3B.
			regs: map[int]byte{0x75: 0x68, 0x3B: 0x04, 0x3C: 0x00, 0x3D: 0xFC, 0x3E: 0x00, 0x3F: 0x40, 0x40: 0x00}},
		{driver: "st_accel_i2c", name: "lis3dh", addr: 0x19, raw: [3]int64{256, -256, 1024},
			// WHO_AM_I 0x33 and OUT_[XYZ] little-endian, 12 bits left
			// aligned from 0x28; the driver reads with the auto-increment
			// bit set (0x80 | reg), so the stub serves both addresses.
			regs: map[int]byte{0x0F: 0x33, 0x8F: 0x33,
				0x28: 0x00, 0x29: 0x10, 0x2A: 0x00, 0x2B: 0xF0, 0x2C: 0x00, 0x2D: 0x40,
				0xA8: 0x00, 0xA9: 0x10, 0xAA: 0x00, 0xAB: 0xF0, 0xAC: 0x00, 0xAD: 0x40}},
	}
	vboard.Modprobe(t, "i2c-dev")
	vboard.Modprobe(t, "i2c-stub", "chip_addr=0x68,0x19")
	bus := stubBus(t)
	for _, c := range chips {
		vboard.Modprobe(t, c.driver)
	}
	for _, c := range chips {
		t.Run(c.name, func(t *testing.T) {
			for reg, v := range c.regs {
				// busybox reads the numbers as hex.
				if out, err := exec.Command("i2cset", "-y", strconv.Itoa(bus), fmt.Sprintf("%#x", c.addr), fmt.Sprintf("%#x", reg), fmt.Sprintf("%#x", v)).CombinedOutput(); err != nil {
					t.Fatalf("i2cset %#x %#x: %v: %s", c.addr, reg, err, out)
				}
			}
			busDir := fmt.Sprintf("/sys/bus/i2c/devices/i2c-%d", bus)
			if err := os.WriteFile(filepath.Join(busDir, "new_device"), []byte(fmt.Sprintf("%s %#x", c.name, c.addr)), 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := os.WriteFile(filepath.Join(busDir, "delete_device"), []byte(fmt.Sprintf("%#x", c.addr)), 0); err != nil {
					t.Errorf("delete %s: %v", c.name, err)
				}
			})
			dev := waitDevice(t, c.name)
			cal, err := readCalibration(dev.Dir)
			if err != nil {
				t.Fatal(err)
			}
			// Any rate the chip offers (the faster, the shorter the
			// wait): each sysfs read on these drivers powers the chip up
			// and waits for a sample, so only values are checked here.
			src, err := NewSource("accel", Config{Device: c.name, Frequencies: []float64{100}, Mode: "poll"}, boardEnv)
			if err != nil {
				t.Fatal(err)
			}
			out, stop := run(t, src)
			var rows []sensors.Sample
			for len(rows) < 3 {
				select {
				case s := <-out:
					rows = append(rows, s)
				case <-time.After(20 * time.Second):
					t.Fatalf("no row from %s for 20 s", c.name)
				}
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			for i := range 3 {
				if cal.scale[i] <= 0 {
					t.Fatalf("%s scale %v", axes[i], cal.scale)
				}
			}
			// After the run, which set the rate: a raw read waits for a
			// sample at the current rate (the LIS3DH probes at 1 Hz).
			for i, ax := range axes {
				got, err := readFloat(filepath.Join(dev.Dir, "in_"+ax+"_raw"))
				if err != nil || int64(got) != c.raw[i] {
					t.Fatalf("in_%s_raw = %v (%v), want the stub's %d", ax, got, err, c.raw[i])
				}
			}
			for _, s := range rows {
				for j := range 3 {
					want := float64(c.raw[j]) * cal.scale[j]
					if math.Abs(s.Values[j]-want) > 1e-9*max(1, math.Abs(want)) {
						t.Fatalf("row %v, want raw %v × scale %v", s.Values, c.raw, cal.scale)
					}
				}
			}
		})
	}
}

// stubBus returns the number of i2c-stub's adapter.
func stubBus(t *testing.T) int {
	t.Helper()
	ents, err := filepath.Glob("/sys/bus/i2c/devices/i2c-*")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if name, err := readString(filepath.Join(e, "name")); err == nil && strings.Contains(name, "stub") {
			n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(e), "i2c-"))
			if err == nil {
				return n
			}
		}
	}
	t.Fatal("no i2c-stub adapter")
	return 0
}
