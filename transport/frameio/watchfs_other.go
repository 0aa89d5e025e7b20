//go:build !linux

package frameio

import (
	"errors"
	"os"
	"time"
)

// errNoWatchFS: the watch directory's checks need Linux's *at system calls.
var errNoWatchFS = errors.New("watch_dir is supported on Linux only")

func openWatched(dir *os.File, name string, seen os.FileInfo) (*os.File, os.FileInfo, error) {
	return nil, nil, errNoWatchFS
}

func openSpooled(dir *os.File, now time.Time) (*os.File, *setAside, error) {
	return nil, nil, errNoWatchFS
}

func moveInto(dir, to *os.File, name string) error { return errNoWatchFS }
