//go:build !linux

package iio

// shieldSignals is a no-op off Linux (IIO exists on Linux only).
func shieldSignals() (restore func()) { return func() {} }
