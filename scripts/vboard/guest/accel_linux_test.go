//go:build vboard

package guest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors/iio/iiotest/uhidaccel"
)

// startAccel plugs the user-space HID sensor-hub accelerometer in and waits
// for the kernel's IIO device; it returns the IIO name the agent finds it by
// and unplugs it when the test ends.
func startAccel(t *testing.T) string {
	t.Helper()
	// The sensor-hub drivers first, so hid-generic does not take the device.
	for _, m := range []string{"uhid", "hid-sensor-hub", "hid-sensor-accel-3d"} {
		modprobe(t, m)
	}
	dev, err := uhidaccel.Open(uhidaccel.Options{})
	if err != nil {
		t.Fatalf("uhid accelerometer: %v", err)
	}
	t.Cleanup(func() { _ = dev.Close() }) // runs before the modules are removed
	const name = "accel_3d"
	waitFor(t, 20*time.Second, "IIO device "+name, func() bool {
		files, _ := filepath.Glob("/sys/bus/iio/devices/iio:device*/name")
		for _, f := range files {
			if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) == name {
				return true
			}
		}
		return false
	})
	return name
}
