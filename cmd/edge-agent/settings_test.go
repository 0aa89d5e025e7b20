package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/logx"
)

func journalStream(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// TestLoggerPrefixesPrioritiesOnlyForTheJournal: with stderr the stream
// JOURNAL_STREAM names, each line starts with its sd-daemon priority (a
// warning is <4>, not the unit's default 6); a plain file or a terminal
// gets the lines unchanged even under systemd's variable.
func TestLoggerPrefixesPrioritiesOnlyForTheJournal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t.Setenv(logx.EnvJournalStream, journalStream(t, w))
	for _, format := range []string{"text", "json"} {
		log := newLogger(w, config.Log{Level: "debug", Format: format})
		log.Debug("d")
		log.Info("i")
		log.Warn("w")
		log.Error("e")
	}
	w.Close()
	var lines []string
	for sc := bufio.NewScanner(r); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	want := []string{"<7>", "<6>", "<4>", "<3>", "<7>", "<6>", "<4>", "<3>"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %q", len(lines), len(want), lines)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) {
			t.Errorf("line %q: want the prefix %s", l, want[i])
		}
	}

	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	for _, f := range []*os.File{file, tty} {
		newLogger(f, config.Log{Level: "info", Format: "text"}).Warn("plain")
	}
	file.Close()
	b, err := os.ReadFile(file.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "time=") {
		t.Errorf("a file under JOURNAL_STREAM of another stream got %q", b)
	}
	buf := make([]byte, 256)
	n, err := ptmx.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); !strings.HasPrefix(got, "time=") {
		t.Errorf("a terminal got %q", got)
	}
}

// TestMemoryLimit: memory_limit sets the runtime's soft limit, 0 turns it
// off, and GOMEMLIMIT in the environment wins over the file.
func TestMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.DiscardHandler)

	t.Setenv(EnvMemoryLimit, "")
	applyMemoryLimit(conf.Size(150<<20), log)
	if got := debug.SetMemoryLimit(-1); got != 150<<20 {
		t.Errorf("limit %d, want 150MiB", got)
	}
	applyMemoryLimit(0, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory_limit 0: limit %d, want none", got)
	}

	debug.SetMemoryLimit(90 << 20) // as the runtime set it from the variable
	t.Setenv(EnvMemoryLimit, "90MiB")
	applyMemoryLimit(conf.Size(150<<20), log)
	if got := debug.SetMemoryLimit(-1); got != 90<<20 {
		t.Errorf("with GOMEMLIMIT set: limit %d, want the environment's 90MiB", got)
	}
}
