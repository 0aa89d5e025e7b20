//go:build !linux

package timesync

import "time"

// kernelSynced is nil off Linux: the clock counts as synchronized.
var kernelSynced func() (bool, error)

var start = time.Now()

// boottime is the process's monotonic clock off Linux.
func boottime() time.Duration { return time.Since(start) }
