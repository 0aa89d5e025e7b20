//go:build !linux

package v4l2

import (
	"errors"
	"runtime"
)

// Discover reports that V4L2 exists only on Linux.
func Discover(devRoot string) ([]Device, error) {
	return nil, errors.New("v4l2 is not available on " + runtime.GOOS)
}
