// Package atomicfile writes a file so that readers, and a power cut, see
// either the old content or the new, never a mix: the spool's metadata, token
// files and key files all go through it (after Tailscale's atomicfile).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of the temporary file WriteFile creates next to
// its target. A crash can leave one behind; directories that are scanned
// (the spool) delete names with this prefix when they open.
const TempPrefix = ".tmp-"

// WriteFile writes data to path with mode perm: a temporary file in the same
// directory, fsync, chmod, rename over path, fsync the directory. A secret
// file is never visible with a wider mode than perm, not even for a moment.
// Safe for concurrent use on different paths; two writers of one path leave
// one of the two contents.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, TempPrefix+"*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := writeSync(tmp, data, perm); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	return nil
}

// writeSync sets f's mode, writes data, syncs and closes f.
func writeSync(f *os.File, data []byte, perm os.FileMode) error {
	err := f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncDir fsyncs directory dir, so a rename or create in it survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
