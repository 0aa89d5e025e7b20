package frameio

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The watch directory is writable by whoever feeds it files (an SD card
// copy, a camera operator's account), so every entry in it is hostile until
// checked. Everything here works on directory file descriptors: a name is
// looked up once, relative to the directory already opened, and never
// through a symbolic link, so swapping an entry between the check and the
// use cannot redirect the agent to a file elsewhere (a token, a key).

// openWatched opens name in dir for reading, without following a symbolic
// link and without blocking on a FIFO, and returns it only if the opened
// file is a regular file with one link and the same file (device and inode)
// the scan saw with lstat.
func openWatched(dir *os.File, name string, seen os.FileInfo) (*os.File, os.FileInfo, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, nil, fmt.Errorf("%w: became a symbolic link", errNotPlainFile)
		}
		return nil, nil, fmt.Errorf("open: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	fi, err := f.Stat()
	switch {
	case err != nil:
		f.Close()
		return nil, nil, fmt.Errorf("stat: %w", err)
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, nil, fmt.Errorf("%w: is %s", errNotPlainFile, fi.Mode().Type())
	case !os.SameFile(fi, seen):
		f.Close()
		return nil, nil, fmt.Errorf("%w: replaced while being opened", errNotPlainFile)
	case links(fi) > 1:
		// A hard link to a private file (a key, tokens) on the same file
		// system looks like a plain file; nothing we record has two names.
		f.Close()
		return nil, nil, fmt.Errorf("%w: has %d hard links", errNotPlainFile, links(fi))
	}
	return f, fi, nil
}

func links(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*unix.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// openSpooled opens dir's .spooled subdirectory, creating it 0700. It must
// be a real directory (not a symbolic link) owned by the agent's user; its
// mode is tightened to 0700 if needed. Anything else by that name is renamed
// aside inside dir (to .spooled.untrusted-<now>, reported in aside) and a
// fresh directory is made, so a planted link cannot steer the moves into
// another directory.
func openSpooled(dir *os.File, now time.Time) (f *os.File, aside *setAside, err error) {
	dfd := int(dir.Fd())
	for {
		if err := unix.Mkdirat(dfd, spooledDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, aside, fmt.Errorf("create %s: %w", spooledDir, err)
		}
		f, bad := openOwnDir(dfd, spooledDir)
		if bad == nil {
			return f, aside, nil
		}
		if aside != nil { // made a fresh one and still not ours: give up
			return nil, aside, fmt.Errorf("%s: %w", spooledDir, bad)
		}
		aside = &setAside{name: spooledDir + ".untrusted-" + strconv.FormatInt(now.UnixNano(), 10), why: bad}
		if err := unix.Renameat(dfd, spooledDir, dfd, aside.name); err != nil {
			return nil, nil, fmt.Errorf("%s (%v) cannot be renamed aside: %w", spooledDir, bad, err)
		}
	}
}

// openOwnDir opens name in dfd as a directory without following a link and
// checks that the agent's user owns it; a looser mode is tightened.
func openOwnDir(dfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, errors.New("not a directory (a symbolic link or a file)")
		}
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if int(st.Uid) != os.Geteuid() {
		unix.Close(fd)
		return nil, fmt.Errorf("owned by uid %d, not the agent's %d", st.Uid, os.Geteuid())
	}
	if st.Mode&0o077 != 0 {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("mode %04o cannot be tightened: %w", st.Mode&0o7777, err)
		}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// moveInto renames name from dir into to (both open directories). Neither
// path is resolved again, so the file lands in the directory that was
// checked, whatever happened to the names meanwhile.
func moveInto(dir, to *os.File, name string) error {
	if err := unix.Renameat(int(dir.Fd()), name, int(to.Fd()), name); err != nil {
		return fmt.Errorf("move to %s: %w", spooledDir, err)
	}
	return nil
}
