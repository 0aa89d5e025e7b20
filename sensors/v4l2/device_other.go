//go:build !linux

package v4l2

import (
	"errors"
	"runtime"
)

// OpenDevice reports that V4L2 exists only on Linux.
func OpenDevice(path string) (FrameSource, error) {
	return nil, errors.New("v4l2 is not available on " + runtime.GOOS)
}
