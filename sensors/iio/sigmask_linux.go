package iio

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// shieldSignals locks the calling goroutine to its OS thread and blocks the
// asynchronous signals a Go process sends itself (SIGURG: the runtime's
// preemption; SIGCHLD: a child exiting) on that thread, until restore is
// called. Some drivers wait interruptibly inside a sysfs read or write and
// swallow the interruption: hid-sensor-hub then returns 0 as the reading
// (seen on the virtual board: 2–4 % of polled rows were 0 on one axis) and
// drops a property write, so the rate read back is the old one. Go sends
// SIGURG to a thread that is just entering such a syscall, so the run's
// sysfs I/O happens on a thread where these signals wait instead. The
// runtime falls back to cooperative preemption for this goroutine meanwhile;
// a signal that arrived is delivered when restore unblocks it.
func shieldSignals() (restore func()) {
	runtime.LockOSThread()
	var set, old unix.Sigset_t
	for _, s := range []unix.Signal{unix.SIGURG, unix.SIGCHLD} {
		sigaddset(&set, s)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		runtime.UnlockOSThread()
		return func() {}
	}
	return func() {
		_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
		runtime.UnlockOSThread()
	}
}

// sigaddset sets signal s in set; the word size of Sigset_t differs between
// 32- and 64-bit targets, the bit order (signal n is bit n-1) does not.
func sigaddset(set *unix.Sigset_t, s unix.Signal) {
	bit := uint(s) - 1
	switch v := any(&set.Val).(type) {
	case *[16]uint64:
		v[bit/64] |= 1 << (bit % 64)
	case *[32]uint32:
		v[bit/32] |= 1 << (bit % 32)
	}
}
