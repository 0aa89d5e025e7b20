package vboard

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unloadWithin is how long an unload waits for a module's last user (a
// device node a driver or the test is still closing) to let go.
const unloadWithin = 10 * time.Second

// Modprobe loads mod with params for the test and, when the test ends,
// removes every module the load added, users first, waiting while a device
// node is still being closed. busybox's `modprobe -r` gives up on the first
// dependency still held, and `rmmod` alone leaves the dependencies loaded
// (hid-sensor-trigger then holds hid-sensor-hub), so the next case would
// find the board changed. Cleanups run last first: a device the test creates
// after this call is gone before the modules are removed.
//
// With params, a copy of mod already loaded (left by another case) is
// unloaded first, so that these parameters apply; modprobe would succeed
// without changing it. The test fails when that copy cannot be unloaded.
func Modprobe(t testing.TB, mod string, params ...string) {
	t.Helper()
	if len(params) > 0 && loaded()[moduleName(mod)] {
		if err := unload(map[string]bool{moduleName(mod): true}); err != nil {
			t.Fatalf("modprobe %s: already loaded, without these parameters: %v", mod, err)
		}
	}
	before := loaded()
	if err := modprobe(mod, params); err != nil {
		t.Fatal(err)
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

// Reload unloads mod, waiting while its last user lets go, and loads it
// again with params: a driver taken away and brought back mid-test. What mod
// pulled in stays loaded, and the cleanup of the Modprobe that first loaded
// mod removes the new copy too (after the test's later cleanups, which may
// still hold its device nodes).
func Reload(mod string, params ...string) error {
	if err := unload(map[string]bool{moduleName(mod): true}); err != nil {
		return fmt.Errorf("reload %s: %w", mod, err)
	}
	return modprobe(mod, params)
}

func modprobe(mod string, params []string) error {
	if out, err := exec.Command("modprobe", append([]string{mod}, params...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("modprobe %s %s: %w: %s", mod, strings.Join(params, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// moduleName is mod as /proc/modules and rmmod spell it.
func moduleName(mod string) string { return strings.ReplaceAll(mod, "-", "_") }

// unload removes the loaded modules in set (by their /proc/modules names),
// users first: a round removes those nobody uses, and the next round those
// they held. When a round removes nothing it waits, for up to unloadWithin
// in all, for a device node to be closed.
func unload(set map[string]bool) error {
	deadline := time.Now().Add(unloadWithin)
	for {
		var busy []string
		var lastErr error
		progress := false
		for m, refs := range loadedRefs() {
			switch {
			case !set[m]:
			case refs != 0:
				busy = append(busy, fmt.Sprintf("%s (use count %d)", m, refs))
			default:
				if out, err := exec.Command("rmmod", m).CombinedOutput(); err != nil {
					busy = append(busy, m)
					lastErr = fmt.Errorf("rmmod %s: %w: %s", m, err, strings.TrimSpace(string(out)))
					continue
				}
				progress = true
			}
		}
		switch {
		case len(busy) == 0:
			return nil
		case progress:
			continue
		case time.Now().After(deadline):
			slices.Sort(busy)
			if lastErr != nil {
				return fmt.Errorf("%s still loaded after %v: %w", strings.Join(busy, ", "), unloadWithin, lastErr)
			}
			return fmt.Errorf("%s still loaded after %v", strings.Join(busy, ", "), unloadWithin)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func loaded() map[string]bool {
	out := map[string]bool{}
	for m := range loadedRefs() {
		out[m] = true
	}
	return out
}

// loadedRefs reads /proc/modules: each loaded module and its use count (-1
// for "-": it cannot be unloaded).
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
			n = -1
		}
		out[fields[0]] = n
	}
	return out
}
