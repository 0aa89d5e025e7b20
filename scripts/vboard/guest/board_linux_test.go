//go:build vboard

// Package guest checks the virtual board itself: that the environment the
// other packages' board cases rely on (scripts/vboard/README.md) is there.
package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edge-agent/edge-agent/internal/vboard"
)

// TestBoardEnvironment: the variables, the share and the agent binaries.
func TestBoardEnvironment(t *testing.T) {
	for _, k := range []string{"VBOARD", "VBOARD_ARCH", "VBOARD_SHARE", "VBOARD_AGENT", "VBOARD_AGENT_CGO"} {
		if os.Getenv(k) == "" {
			t.Errorf("%s is not set", k)
		}
	}
	if st, err := os.Stat(filepath.Join(os.Getenv("VBOARD_SHARE"), "ctl")); err != nil || !st.IsDir() {
		t.Errorf("the share's ctl directory: %v", err)
	}
	for _, bin := range []string{os.Getenv("VBOARD_AGENT"), os.Getenv("VBOARD_AGENT_CGO")} {
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil {
			t.Errorf("%s version: %v\n%s", bin, err, out)
		}
	}
}

// TestBoardModules: every driver the cases use loads with its dependencies,
// and unloads again.
func TestBoardModules(t *testing.T) {
	mods := []string{"vivid", "snd-aloop", "uhid", "hid-sensor-hub", "hid-sensor-accel-3d",
		"cdc_acm", "dummy_hcd", "libcomposite", "usb_f_acm"}
	if os.Getenv("VBOARD_ARCH") == "amd64" {
		mods = append(mods, "snd-dummy", "i2c-stub", "i2c-dev", "inv-mpu6050-i2c", "st_accel_i2c")
	}
	for _, m := range mods {
		t.Run(m, func(t *testing.T) {
			var params []string
			if m == "i2c-stub" {
				params = []string{"chip_addr=0x50"} // it refuses to load with no chip
			}
			vboard.Modprobe(t, m, params...) // and unloads it with its dependencies
		})
	}
}

// TestBoardSerialAdapter: qemu's USB serial adapter is bound by ftdi_sio
// (the harness plugs it in when scripts/vboard/hostserial exists).
func TestBoardSerialAdapter(t *testing.T) {
	drv, err := os.Readlink("/sys/class/tty/ttyUSB0/device/driver")
	if err != nil {
		t.Fatalf("no USB serial port: %v", err)
	}
	if filepath.Base(drv) != "ftdi_sio" {
		t.Fatalf("/dev/ttyUSB0 is driven by %s, not ftdi_sio", filepath.Base(drv))
	}
}
