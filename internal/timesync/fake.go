package timesync

import (
	"fmt"
	"sync"
	"time"
)

// Fake is a Source for tests: a wall clock that can jump either way, a
// boottime that only Advance moves, a synchronized flag and a boot id that
// Reboot changes. It is safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	wall   time.Time
	boot   time.Duration
	synced bool
	err    error
	boots  int
}

// NewFake returns an unsynchronized fake at wall time wall, one minute after
// boot.
func NewFake(wall time.Time) *Fake {
	return &Fake{wall: wall, boot: time.Minute, boots: 1}
}

// Read returns the fake wall clock and boottime.
func (f *Fake) Read() (time.Time, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall, f.boot
}

// Synced returns what SetSynced and SetError set.
func (f *Fake) Synced() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced, f.err
}

// BootID names the current fake boot.
func (f *Fake) BootID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("fake-boot-%d", f.boots)
}

// Advance lets d pass: both clocks move by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
	f.boot += d
}

// Step jumps the wall clock by d (negative: backwards), as a clock set by
// NTP or by hand does; boottime does not move.
func (f *Fake) Step(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
}

// SetSynced sets the synchronized flag.
func (f *Fake) SetSynced(synced bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = synced
}

// SetError makes Synced fail with err (nil: stop failing).
func (f *Fake) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// Reboot starts a new boot at wall time wall: a new boot id, boottime back
// near zero, not synchronized. A Sync made before keeps the old boot id, so
// a test makes a new Sync after Reboot, as a restarted agent would.
func (f *Fake) Reboot(wall time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boots++
	f.wall, f.boot, f.synced = wall, time.Second, false
}
