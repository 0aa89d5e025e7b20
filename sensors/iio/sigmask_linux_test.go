package iio

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestShieldSignals: while shielded, the thread blocks SIGURG and SIGCHLD;
// restore puts the thread's mask back.
func TestShieldSignals(t *testing.T) {
	runtime.LockOSThread() // keep one thread across shield and restore
	defer runtime.UnlockOSThread()
	mask := func() unix.Sigset_t {
		var cur unix.Sigset_t
		if err := unix.PthreadSigmask(unix.SIG_BLOCK, nil, &cur); err != nil {
			t.Fatal(err)
		}
		return cur
	}
	before := mask()
	restore := shieldSignals()
	during := mask()
	restore()
	after := mask()

	var want unix.Sigset_t
	sigaddset(&want, unix.SIGURG)
	sigaddset(&want, unix.SIGCHLD)
	for i := range want.Val {
		if during.Val[i]&want.Val[i] != want.Val[i] {
			t.Fatalf("mask word %d is %#x while shielded, want bits %#x", i, during.Val[i], want.Val[i])
		}
	}
	if after != before {
		t.Fatalf("mask after restore %v, before %v", after.Val[:2], before.Val[:2])
	}
}
