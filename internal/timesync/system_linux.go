package timesync

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// kernelSynced asks adjtimex(2) without changing anything (modes 0, allowed
// to any user): the clock is synchronized unless the call returns
// TIME_ERROR, which the kernel does while STA_UNSYNC is set — from boot
// until an NTP daemon clears it, and again when the daemon has not updated
// the clock for many hours.
func kernelSynced() (bool, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("timesync: adjtimex: %w", err)
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, nil
}

// start is the fallback for boottime when CLOCK_BOOTTIME cannot be read
// (never on Linux ≥ 2.6.39).
var start = time.Now()

// boottime reads CLOCK_BOOTTIME.
func boottime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Since(start)
	}
	return time.Duration(ts.Nano())
}
