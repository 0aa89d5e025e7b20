//go:build !linux

package iio

import "time"

// timeBase on non-Linux builds (development only: IIO exists on Linux)
// treats timestamps as Unix nanoseconds.
type timeBase struct{}

func newTimeBase(string) (timeBase, bool) { return timeBase{}, false }

func (timeBase) at(ts int64) time.Time { return time.Unix(0, ts) }
