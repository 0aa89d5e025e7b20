package spool_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestProgressLog: SetProgress starts an item's progress log, AppendProgress
// adds a line to it without rewriting anything (the metadata file keeps its
// inode, the log only grows by the record), and both survive a reopen.
func TestProgressLog(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 1<<20)
	it, err := s.Put("k", meta{Name: "a"}, strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendProgress(it.ID, 1); err == nil {
		t.Error("AppendProgress before SetProgress succeeded")
	}
	metaPath := filepath.Join(dir, it.ID+".meta")
	inode := func(p string) uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	metaIno := inode(metaPath)
	if err := s.SetProgress(it.ID, map[string]string{"asset": "x"}); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, it.ID+".progress")
	logIno := inode(logPath)
	for i := range 3 {
		before, _ := os.Stat(logPath)
		if err := s.AppendProgress(it.ID, i); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(logPath)
		if grew := after.Size() - before.Size(); grew != 2 {
			t.Errorf("appending record %d grew the log by %d bytes, want 2 (\"%d\\n\")", i, grew, i)
		}
	}
	if inode(metaPath) != metaIno || inode(logPath) != logIno {
		t.Error("a progress step replaced the metadata file or the log")
	}
	check := func(what string, got json.RawMessage, updates []json.RawMessage) {
		t.Helper()
		var ups []string
		for _, u := range updates {
			ups = append(ups, string(u))
		}
		if string(got) != `{"asset":"x"}` || strings.Join(ups, ",") != "0,1,2" {
			t.Errorf("%s: progress %s updates %v", what, got, ups)
		}
	}
	cur, _ := s.Get(it.ID)
	check("live", cur.Progress, cur.Updates)
	re, _ := mustOpen(t, dir, 1<<20).Get(it.ID)
	check("reopened", re.Progress, re.Updates)

	// SetProgress starts the log over.
	if err := s.SetProgress(it.ID, nil); err != nil {
		t.Fatal(err)
	}
	if re, _ := mustOpen(t, dir, 1<<20).Get(it.ID); string(re.Progress) != "null" || len(re.Updates) != 0 {
		t.Errorf("after SetProgress(nil): %s %v", re.Progress, re.Updates)
	}
}

// TestProgressCutShort: a line a crash cut short is dropped when the spool
// opens, and the file is cut back so the next record starts a clean line.
func TestProgressCutShort(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 1<<20)
	it, _ := s.Put("k", nil, strings.NewReader("data"))
	if err := s.SetProgress(it.ID, "base"); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendProgress(it.ID, 7); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, it.ID+".progress"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"torn":`)
	f.Close()
	s2 := mustOpen(t, dir, 1<<20)
	if err := s2.AppendProgress(it.ID, 8); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, it.ID+".progress"))
	if string(b) != "\"base\"\n7\n8\n" {
		t.Errorf("log after a torn line and one more record: %q", b)
	}
	got, _ := mustOpen(t, dir, 1<<20).Get(it.ID)
	if string(got.Progress) != `"base"` || len(got.Updates) != 2 {
		t.Errorf("progress %s updates %d", got.Progress, len(got.Updates))
	}
}

// TestProgressOldFormatAndRemoval: an item written before the log existed
// keeps its progress from the metadata file (the first AppendProgress starts
// the log with it) until SetProgress writes a new one;
// Remove deletes the log, and a log left by a removal cut short goes when the
// spool opens.
func TestProgressOldFormatAndRemoval(t *testing.T) {
	dir := t.TempDir()
	const id = "1700000000000000000-0a0b0c0d0e0f"
	old := `{"id":"` + id + `","kind":"k","created":"2024-01-01T00:00:00Z","size":3,"progress":{"done":[true,false]}}`
	os.WriteFile(filepath.Join(dir, id+".data"), []byte("old"), 0o600)
	os.WriteFile(filepath.Join(dir, id+".meta"), []byte(old), 0o600)
	const orphan = "1600000000000000000-aaaaaaaaaaaa"
	os.WriteFile(filepath.Join(dir, orphan+".progress"), []byte("1\n"), 0o600)
	s := mustOpen(t, dir, 1<<20)
	if it, _ := s.Get(id); string(it.Progress) != `{"done":[true,false]}` {
		t.Errorf("old progress %s", it.Progress)
	}
	if _, err := os.Stat(filepath.Join(dir, orphan+".progress")); !os.IsNotExist(err) {
		t.Errorf("orphan progress log kept: %v", err)
	}
	if err := s.AppendProgress(id, 1); err != nil {
		t.Fatal(err)
	}
	if it, _ := mustOpen(t, dir, 1<<20).Get(id); string(it.Progress) != `{"done":[true,false]}` || len(it.Updates) != 1 || string(it.Updates[0]) != "1" {
		t.Errorf("an old item after one AppendProgress: %s %s", it.Progress, it.Updates)
	}
	if err := s.SetProgress(id, "new"); err != nil {
		t.Fatal(err)
	}
	if it, _ := mustOpen(t, dir, 1<<20).Get(id); string(it.Progress) != `"new"` {
		t.Errorf("the log does not replace the old progress: %s", it.Progress)
	}
	if err := s.Remove(id); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left after Remove: %v", ents)
	}
}
