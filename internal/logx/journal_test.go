package logx

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"
)

func TestPriority(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  int
	}{
		{slog.LevelDebug, 7}, {slog.LevelDebug + 2, 7}, {slog.LevelInfo, 6}, {slog.LevelInfo + 2, 6},
		{slog.LevelWarn, 4}, {slog.LevelError, 3}, {slog.LevelError + 4, 3},
	} {
		if got := Priority(tc.level); got != tc.want {
			t.Errorf("Priority(%v) = %d, want %d", tc.level, got, tc.want)
		}
	}
}

func TestWithPrioritiesPrefixesEveryLine(t *testing.T) {
	var buf bytes.Buffer
	h := WithPriorities(&buf, func(w io.Writer) slog.Handler {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	})
	log := slog.New(h).With("link", "ei").WithGroup("g")
	log.Debug("d")
	log.Info("i", "k", "two\nlines") // the text handler quotes the newline
	log.Warn("w")
	log.Error("e")
	want := []string{"<7>", "<6>", "<4>", "<3>"}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]+"time=") || !strings.Contains(l, "link=ei") {
			t.Errorf("line %d = %q, want %s in front of the handler's line", i, l, want[i])
		}
	}
}

// linesHandler writes each record as two lines, as a handler that does
// not escape newlines would.
type linesHandler struct{ w io.Writer }

func (h linesHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h linesHandler) Handle(_ context.Context, r slog.Record) error {
	_, err := fmt.Fprintf(h.w, "%s\nsecond line\n", r.Message)
	return err
}
func (h linesHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h linesHandler) WithGroup(string) slog.Handler      { return h }

func TestWithPrioritiesMultiLineRecord(t *testing.T) {
	var buf bytes.Buffer
	slog.New(WithPriorities(&buf, func(w io.Writer) slog.Handler { return linesHandler{w} })).Warn("first")
	if got, want := buf.String(), "<4>first\n<4>second line\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// streamOf is the JOURNAL_STREAM value systemd would set for f.
func streamOf(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestIsJournal(t *testing.T) {
	r, w, err := os.Pipe() // journald's stream is a socket; a pipe has a dev:inode too
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()

	stream := streamOf(t, w)
	if !IsJournal(w, stream) {
		t.Errorf("the stream JOURNAL_STREAM names (%s) is not taken for the journal", stream)
	}
	for name, f := range map[string]*os.File{"plain file": file, "terminal": tty} {
		if IsJournal(f, stream) {
			t.Errorf("%s taken for the journal named %s", name, stream)
		}
		if !IsJournal(f, streamOf(t, f)) {
			t.Errorf("%s not matched by its own dev:inode", name)
		}
	}
	for _, bad := range []string{"", "12", "a:b", "1:", ":1", stream + "0"} {
		if IsJournal(w, bad) {
			t.Errorf("JOURNAL_STREAM=%q matched", bad)
		}
	}
}
