package timesync

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// TimesyncdFile is created by systemd-timesyncd once it has synchronized the
// clock in this boot (systemd-timesyncd.service(8)).
const TimesyncdFile = "/run/systemd/timesync/synchronized"

// system is the real Source. kernel asks the kernel's NTP status (nil where
// the platform has none); file is TimesyncdFile.
type system struct {
	bootID string
	file   string
	kernel func() (bool, error)
	boot   func() time.Duration
}

// System returns the board's clocks: the wall clock, CLOCK_BOOTTIME, the
// boot id, and the synchronization state from the kernel (adjtimex) or
// systemd-timesyncd's file, whichever says synchronized (see the package
// doc). On platforms without these, boottime is the process's monotonic
// clock, the boot id is per process (so stamps of an earlier run count as
// another boot) and the clock counts as synchronized (a workstation keeps
// its own time).
func System() Source {
	return &system{bootID: readBootID(), file: TimesyncdFile, kernel: kernelSynced, boot: boottime}
}

// Read strips the monotonic reading from the wall time: a stamp is about
// the wall clock, and Go would otherwise compare two in-process times by
// their monotonic readings, blind to a step of the wall clock.
func (s *system) Read() (time.Time, time.Duration) {
	w := time.Now().Round(0)
	return w, s.boot()
}

func (s *system) BootID() string { return s.bootID }

// Synced: the file wins when it exists (timesyncd synchronized this boot;
// the kernel's flag can be set again later when updates stop for hours,
// while the clock is still close); otherwise the kernel's answer.
func (s *system) Synced() (bool, error) {
	if s.file != "" {
		if _, err := os.Stat(s.file); err == nil {
			return true, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return s.kernelOr(fmt.Errorf("timesync: %w", err))
		}
	}
	return s.kernelOr(nil)
}

func (s *system) kernelOr(ferr error) (bool, error) {
	if s.kernel == nil {
		return ferr == nil, ferr
	}
	ok, err := s.kernel()
	if ok {
		return true, nil
	}
	return false, errors.Join(ferr, err)
}

// readBootID reads the kernel's boot id, or makes one for this process when
// there is none.
func readBootID() string {
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id
		}
	}
	var r [16]byte
	_, _ = rand.Read(r[:])
	return "process-" + hex.EncodeToString(r[:])
}
