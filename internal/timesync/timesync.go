// Package timesync tells whether the board's wall clock can be trusted yet,
// and lets a capture keep a time that is corrected once it can.
//
// A Raspberry Pi has no real-time clock. After a power cut it boots with the
// time saved at the last shutdown (fake-hwclock) or with the epoch, and the
// wall clock jumps, forward or backward, when NTP first synchronizes it. A
// capture made before that carries a wrong wall time. So a capture keeps a
// Stamp: its wall time, CLOCK_BOOTTIME (a monotonic clock that counts from
// boot, suspend included, and that other processes of the same boot read
// alike, so it survives an agent restart), the boot's id, and whether the
// wall clock was synchronized. Once the clock is synchronized, an unsynced
// stamp of this boot is corrected from its monotonic age:
//
//	true wall time = now(wall) − (now(boottime) − stamp(boottime))
//
// A stamp of an earlier boot cannot be corrected (boottime restarted at
// zero); it keeps its wall time as taken. A link that sends an age (Frame.io's
// offset) needs no synchronized clock at all for a stamp of this boot: the
// age is exact either way.
//
// Whether the clock is synchronized comes from two places, and either one
// saying yes is enough (see System): the kernel's NTP status (adjtimex(2):
// any NTP daemon — chrony, ntpd, systemd-timesyncd — clears STA_UNSYNC once
// it disciplines the clock) and /run/systemd/timesync/synchronized, which
// systemd-timesyncd creates at its first synchronization of the boot (/run
// is a tmpfs). A board with an RTC but no NTP daemon never reports
// synchronized: its stamps stay estimates, so nothing may wait for
// synchronization without a bound.
package timesync

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Source reads the clocks and the synchronization state. System reads the
// real ones; Fake is for tests. Implementations are safe for concurrent use.
type Source interface {
	// Read returns the wall clock and the time since boot (CLOCK_BOOTTIME),
	// read back to back.
	Read() (wall time.Time, boot time.Duration)
	// Synced reports whether the wall clock is synchronized; an error says
	// the source could not tell (then it is treated as not synchronized).
	Synced() (bool, error)
	// BootID identifies the current boot (Linux:
	// /proc/sys/kernel/random/boot_id).
	BootID() string
}

// Stamp is the time of one capture, as it is stored with it (spool item
// metadata). The zero Stamp is "no stamp".
type Stamp struct {
	Wall time.Time `json:"wall"`
	// Boot is CLOCK_BOOTTIME at the capture, in nanoseconds.
	Boot   time.Duration `json:"boot_ns"`
	BootID string        `json:"boot_id"`
	// Synced says the wall clock was synchronized when the stamp was taken,
	// so Wall is right as it is.
	Synced bool `json:"synced"`
}

// IsZero reports whether s is the zero Stamp.
func (s Stamp) IsZero() bool { return s.BootID == "" && s.Wall.IsZero() }

// Back returns the stamp of a moment d before s (a capture that happened d
// before it was stamped), never before boot.
func (s Stamp) Back(d time.Duration) Stamp {
	d = min(d, s.Boot)
	s.Wall = s.Wall.Add(-d)
	s.Boot -= d
	return s
}

// Quality says how far the time Resolve gives can be trusted.
type Quality int

const (
	// Exact: stamped while the wall clock was synchronized.
	Exact Quality = iota
	// Corrected: stamped before synchronization in this boot and corrected
	// from its monotonic age now that the clock is synchronized.
	Corrected
	// Estimated: stamped before synchronization, and the clock is still not
	// synchronized: the current wall clock minus the age, which may change
	// when the clock is synchronized (the age itself is exact).
	Estimated
	// Uncorrectable: stamped before synchronization in an earlier boot; the
	// wall time as taken, which may be wrong by any amount.
	Uncorrectable
)

func (q Quality) String() string {
	switch q {
	case Exact:
		return "exact"
	case Corrected:
		return "corrected"
	case Estimated:
		return "estimated"
	case Uncorrectable:
		return "uncorrectable"
	}
	return fmt.Sprintf("Quality(%d)", int(q))
}

// Capture is a stamp resolved against the current clocks.
type Capture struct {
	// Time is the best known wall time of the capture.
	Time time.Time
	// Age is how long ago the capture was made, never negative. For a stamp
	// of this boot it comes from CLOCK_BOOTTIME and is exact even while the
	// wall clock is wrong or jumps; for an earlier boot it is the difference
	// of wall times (0 when the capture looks newer than now).
	Age     time.Duration
	Quality Quality
}

// DefaultCacheFor is how long Sync reuses one answer about synchronization:
// stamps are taken per capture, and the answer changes once per boot.
const DefaultCacheFor = time.Second

// Options configures a Sync. The zero value is valid.
type Options struct {
	// Logger receives one line when the clock becomes synchronized (with the
	// step it made) or stops being so; nil discards.
	Logger *slog.Logger
	// CacheFor is how long one synchronization check is reused
	// (DefaultCacheFor when 0), measured on the source's boottime.
	CacheFor time.Duration
}

// Sync stamps captures and resolves stamps against one Source. The agent
// makes one and hands it to every link and spool, so a stamp taken by one is
// resolved by another against the same clocks.
//
// Concurrency: all methods are safe for concurrent use; none blocks beyond
// one read of the source.
type Sync struct {
	src      Source
	log      *slog.Logger
	cacheFor time.Duration
	bootID   string

	mu        sync.Mutex
	checked   bool
	checkedAt time.Duration // boottime of the last check
	synced    bool
	errLogged bool
	// offset is wall − boottime at the last unsynchronized check: the change
	// of it at synchronization is the step NTP made.
	offset time.Duration
}

// New returns a Sync over src.
func New(src Source, opts Options) *Sync {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheFor <= 0 {
		opts.CacheFor = DefaultCacheFor
	}
	return &Sync{src: src, log: opts.Logger, cacheFor: opts.CacheFor, bootID: src.BootID()}
}

// Now returns a stamp of the current moment.
func (s *Sync) Now() Stamp {
	wall, boot := s.src.Read()
	return Stamp{Wall: wall, Boot: boot, BootID: s.bootID, Synced: s.syncedAt(wall, boot)}
}

// Synced reports whether the wall clock is synchronized now.
func (s *Sync) Synced() bool { return s.Now().Synced }

// syncedAt returns the synchronization state, asking the source at most once
// per cacheFor of boottime, and logs its changes.
func (s *Sync) syncedAt(wall time.Time, boot time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checked && boot >= s.checkedAt && boot-s.checkedAt < s.cacheFor {
		return s.synced
	}
	synced, err := s.src.Synced()
	if err != nil && !s.errLogged {
		s.errLogged = true
		s.log.Warn("timesync: cannot tell whether the wall clock is synchronized; treating it as not synchronized", "err", err)
	}
	offset := time.Duration(wall.UnixNano()) - boot
	switch {
	case !s.checked && !synced:
		s.log.Info("timesync: the wall clock is not synchronized yet; captures keep their monotonic age until it is", "wall", wall.UTC().Format(time.RFC3339))
	case s.checked && synced && !s.synced:
		s.log.Info("timesync: the wall clock is synchronized", "wall", wall.UTC().Format(time.RFC3339), "step", (offset - s.offset).Round(time.Millisecond))
	case s.checked && !synced && s.synced:
		s.log.Warn("timesync: the wall clock is no longer reported synchronized")
	}
	if !synced {
		s.offset = offset
	}
	s.checked, s.checkedAt, s.synced = true, boot, synced
	return synced
}

// Resolve returns the best time and the age of the capture stamped st. A
// zero st resolves to the zero Capture with Quality Uncorrectable.
func (s *Sync) Resolve(st Stamp) Capture {
	now := s.Now()
	if st.BootID != now.BootID {
		c := Capture{Time: st.Wall, Quality: Uncorrectable}
		if st.Synced {
			c.Quality = Exact
		}
		if d := now.Wall.Sub(st.Wall); d > 0 && !st.Wall.IsZero() {
			c.Age = d
		}
		return c
	}
	age := max(now.Boot-st.Boot, 0)
	switch {
	case st.Synced:
		return Capture{Time: st.Wall, Age: age, Quality: Exact}
	case now.Synced:
		return Capture{Time: now.Wall.Add(-age), Age: age, Quality: Corrected}
	default:
		return Capture{Time: now.Wall.Add(-age), Age: age, Quality: Estimated}
	}
}
