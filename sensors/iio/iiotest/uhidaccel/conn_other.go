//go:build !linux

package uhidaccel

import (
	"errors"
	"os"
)

// fdConn exists on Linux only; elsewhere Open fails.
type fdConn struct{ *os.File }

func openFD(string) (*fdConn, error) { return nil, errors.New("uhid needs Linux") }

func (c *fdConn) release() {}
