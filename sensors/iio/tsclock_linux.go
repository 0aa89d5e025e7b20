package iio

import (
	"time"

	"golang.org/x/sys/unix"
)

// clockIDs maps current_timestamp_clock values to clock ids.
var clockIDs = map[string]int32{
	"realtime":         unix.CLOCK_REALTIME,
	"monotonic":        unix.CLOCK_MONOTONIC,
	"monotonic_raw":    unix.CLOCK_MONOTONIC_RAW,
	"realtime_coarse":  unix.CLOCK_REALTIME_COARSE,
	"monotonic_coarse": unix.CLOCK_MONOTONIC_COARSE,
	"boottime":         unix.CLOCK_BOOTTIME,
	"tai":              unix.CLOCK_TAI,
}

// kernelNow reads the named kernel clock in nanoseconds.
func kernelNow(name string) (int64, bool) {
	id, ok := clockIDs[name]
	if !ok {
		return 0, false
	}
	var ts unix.Timespec
	if unix.ClockGettime(id, &ts) != nil {
		return 0, false
	}
	return ts.Nano(), true
}

// timeBase pairs a Go time (which carries a monotonic reading) with the same
// instant on the kernel clock the IIO timestamps use, so that a scan's
// timestamp becomes a time.Time that orders correctly against time.Now().
type timeBase struct {
	goTime time.Time
	kernel int64
}

func newTimeBase(clockName string) (timeBase, bool) {
	now := time.Now()
	k, ok := kernelNow(clockName)
	return timeBase{goTime: now, kernel: k}, ok
}

// at converts a kernel timestamp (ns on the base's clock) to a time.Time.
func (b timeBase) at(ts int64) time.Time { return b.goTime.Add(time.Duration(ts - b.kernel)) }
