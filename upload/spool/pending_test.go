package spool_test

import (
	"errors"
	"io"
	"os"
	"testing"

	"github.com/edge-agent/edge-agent/upload/spool"
)

// TestPending: a producer writes an item's data into the spool itself
// (seeking back to patch it, as a signed recording does); Commit makes it
// an item, Abort and a refused Commit leave nothing, and a pending item a
// crash left behind is gone when the spool opens.
func TestPending(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, 10)
	p, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	p.File().WriteString("0000 data")
	p.File().WriteAt([]byte("SIGN"), 0)
	it, err := p.Commit("k", meta{Name: "rec"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := s.Open(it.ID)
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "SIGN data" || it.Size != 9 || string(it.Meta) != `{"name":"rec"}` {
		t.Errorf("item %+v data %q", it, b)
	}
	if _, err := p.Commit("k", nil, nil); err == nil {
		t.Error("a second Commit succeeded")
	}
	p.Abort() // a no-op now: the item stays
	if _, ok := s.Get(it.ID); !ok {
		t.Error("Abort after Commit removed the item")
	}

	aborted, _ := s.Create()
	aborted.File().WriteString("x")
	aborted.Abort()
	big, _ := s.Create()
	big.File().WriteString("more than the room left")
	if _, err := big.Commit("k", nil, nil); !errors.Is(err, spool.ErrFull) {
		t.Errorf("over the bound: %v, want ErrFull", err)
	}
	crashed, _ := s.Create()
	crashed.File().WriteString("cut off")
	reopened := mustOpen(t, dir, 10)
	if st := s.Stats(); st.Refused != 1 || st.Items != 1 {
		t.Errorf("stats %+v: want the one item and one refusal", st)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 || len(reopened.Items()) != 1 {
		t.Errorf("files %v: want only the item's data and metadata", ents)
	}
	crashed.Abort()
}
