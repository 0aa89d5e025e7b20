package uhidaccel

import "golang.org/x/sys/unix"

// monotonicNow reads CLOCK_MONOTONIC in ns (the clock the iio source asks
// the IIO device to stamp scans with); 0 when it cannot.
func monotonicNow() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Nano()
}
