//go:build vboard

// Board case (scripts/vboard): the system source against the kernel's own
// clock discipline, which only a kernel shows and a test may only change on
// a machine of its own: the guest boots with no NTP daemon, so adjtimex
// reports the clock unsynchronized; an NTP daemon's ADJ_STATUS (clearing
// STA_UNSYNC) makes it synchronized; setting the date by hand
// (clock_settime) makes the kernel call it unsynchronized again; and
// CLOCK_BOOTTIME does not move with any of it, so a stamp taken before a
// step backwards resolves to its true time.

package timesync

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// setStatus sets the kernel's NTP status word as an NTP daemon does, with a
// small estimated and maximum error when it clears STA_UNSYNC.
func setStatus(t *testing.T, status int32) {
	t.Helper()
	tx := unix.Timex{Modes: unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR, Status: status, Maxerror: 1000, Esterror: 100}
	if _, err := unix.Adjtimex(&tx); err != nil {
		t.Fatalf("adjtimex: %v", err)
	}
}

func settime(t *testing.T, w time.Time) {
	t.Helper()
	ts := unix.NsecToTimespec(w.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		t.Fatalf("clock_settime: %v", err)
	}
}

func TestBoardKernelClock(t *testing.T) {
	src := System().(*system)
	src.file = "" // no systemd-timesyncd in the guest; the kernel alone
	ts := New(src, Options{CacheFor: time.Nanosecond})
	start, startBoot := src.Read()
	t.Cleanup(func() { // the true time again, for the cases after this one
		_, b := src.Read()
		settime(t, start.Add(b-startBoot))
		setStatus(t, unix.STA_UNSYNC)
	})

	if ok, err := kernelSynced(); ok || err != nil {
		t.Fatalf("at boot with no NTP daemon: synchronized %v, %v; want false", ok, err)
	}
	setStatus(t, 0) // what chrony, ntpd or timesyncd do once they trust their servers
	if !ts.Synced() {
		t.Fatal("STA_UNSYNC cleared, but the source says not synchronized")
	}
	settime(t, time.Now().Add(time.Second)) // a date set by hand
	if ts.Synced() {
		t.Fatal("after clock_settime the kernel should report the clock unsynchronized (ntp_clear)")
	}

	// A capture, then the clock steps back an hour (fake-hwclock's old
	// time), then NTP sets it right: the capture resolves to its true time.
	before := ts.Now()
	trueWall := func() time.Time { _, b := src.Read(); return before.Wall.Add(b - before.Boot) }
	settime(t, time.Now().Add(-time.Hour))
	if w, _ := src.Read(); w.After(before.Wall) {
		t.Fatalf("the wall clock did not step back: %v after %v", w, before.Wall)
	}
	if c := ts.Resolve(before); c.Age < 0 || c.Age > time.Minute || c.Quality != Estimated {
		t.Errorf("before sync: %+v, want a small positive age, estimated", c)
	}
	settime(t, trueWall())
	setStatus(t, 0)
	c := ts.Resolve(before)
	if c.Quality != Corrected || c.Time.Sub(before.Wall).Abs() > 100*time.Millisecond {
		t.Errorf("after sync: %+v, want corrected to %v (within 100 ms)", c, before.Wall)
	}
}
