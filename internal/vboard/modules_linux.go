// Package vboard holds what the virtual board's cases share (see
// scripts/vboard/README.md): loading kernel modules for one test and
// removing them, and everything they pulled in, afterwards. It is imported
// only by test files built with the vboard tag.
package vboard

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Modprobe loads mod with params for the test and, when the test ends,
// removes every module the load added that nothing uses any more. busybox's
// `modprobe -r` gives up on the first dependency still held, and `rmmod`
// alone leaves the dependencies loaded (hid-sensor-trigger then holds
// hid-sensor-hub), so the next case would find the board changed.
func Modprobe(t testing.TB, mod string, params ...string) {
	t.Helper()
	before := loaded()
	if out, err := exec.Command("modprobe", append([]string{mod}, params...)...).CombinedOutput(); err != nil {
		t.Fatalf("modprobe %s: %v: %s", mod, err, out)
	}
	added := map[string]bool{}
	for m := range loaded() {
		if !before[m] {
			added[m] = true
		}
	}
	t.Cleanup(func() {
		if err := unload(added); err != nil {
			t.Errorf("unloading %s: %v", mod, err)
		}
	})
}

// unload removes the modules in set, users first, retrying for a few
// seconds while a device node is still being closed.
func unload(set map[string]bool) error {
	deadline := time.Now().Add(5 * time.Second)
	var lastErr error
	for {
		progress := false
		lastErr = nil
		for m, refs := range loadedRefs() {
			if !set[m] || refs > 0 {
				continue
			}
			if out, err := exec.Command("rmmod", m).CombinedOutput(); err != nil {
				lastErr = &unloadError{mod: m, out: strings.TrimSpace(string(out)), err: err}
				continue
			}
			delete(set, m)
			progress = true
		}
		remaining := 0
		for m := range loadedRefs() {
			if set[m] {
				remaining++
			}
		}
		if remaining == 0 {
			return nil
		}
		if !progress && time.Now().After(deadline) {
			if lastErr == nil {
				lastErr = &unloadError{mod: strings.Join(keys(set), ","), out: "still in use"}
			}
			return lastErr
		}
		if !progress {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

type unloadError struct {
	mod, out string
	err      error
}

func (e *unloadError) Error() string {
	if e.err != nil {
		return "rmmod " + e.mod + ": " + e.err.Error() + ": " + e.out
	}
	return e.mod + ": " + e.out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func loaded() map[string]bool {
	out := map[string]bool{}
	for m := range loadedRefs() {
		out[m] = true
	}
	return out
}

// loadedRefs reads /proc/modules: each loaded module and its use count.
func loadedRefs() map[string]int {
	out := map[string]int{}
	f, err := os.Open("/proc/modules")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		n, err := strconv.Atoi(fields[2])
		if err != nil {
			n = -1 // "-": cannot be unloaded anyway
		}
		out[fields[0]] = n
	}
	return out
}
