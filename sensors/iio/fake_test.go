package iio

import (
	"os"
	"testing"

	"github.com/edge-agent/edge-agent/sensors/iio/iiotest"
)

// fakeDev is a fake device (see iiotest.Device).
type fakeDev = iiotest.Device

// fakeTree wraps iiotest.Tree with t.Fatal error handling.
type fakeTree struct {
	*iiotest.Tree
	root, sys, dev string
}

func newTree(t testing.TB) *fakeTree {
	t.Helper()
	tr, err := iiotest.NewTree(t.TempDir())
	must(t, err)
	return &fakeTree{Tree: tr, root: tr.Root, sys: tr.Sys, dev: tr.Dev}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func put(t testing.TB, path, v string) {
	t.Helper()
	must(t, iiotest.Put(path, v))
}

func get(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	s := string(b)
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

func (ft *fakeTree) add(t testing.TB, d fakeDev) string {
	t.Helper()
	dir, err := ft.Add(d)
	must(t, err)
	return dir
}

func (ft *fakeTree) writer(t testing.TB, index int) *os.File {
	t.Helper()
	f, err := ft.OpenWriter(index)
	must(t, err)
	return f
}

func scan(x, y, z int16, ts int64) []byte { return iiotest.Scan(x, y, z, ts) }
