package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/edge-agent/edge-agent/agent/console"
)

// tokenConfig writes a config whose state directory is stateDir, with
// status.token_file when tokenFile is set, and returns its path.
func tokenConfig(t *testing.T, stateDir, tokenFile string) string {
	t.Helper()
	body := "state_dir: " + stateDir + "\nstatus:\n  listen: \"\"\n"
	if tokenFile != "" {
		body += "  token_file: " + tokenFile + "\n"
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func consoleToken(t *testing.T, euid int, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = consoleTokenAs(euid, args, &o, &e)
	return code, o.String(), e.String()
}

// TestConsoleTokenMadeOnceThenPrinted: the first run makes the token where
// the agent reads it (state_dir/console-token, 0600) and prints it alone;
// the next prints the same one, which is also the agent's.
func TestConsoleTokenMadeOnceThenPrinted(t *testing.T) {
	state := t.TempDir()
	cfg := tokenConfig(t, state, "")
	code, first, stderr := consoleToken(t, os.Geteuid(), "-config", cfg)
	if code != exitOK || !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(first) || !strings.Contains(stderr, "made ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, first, stderr)
	}
	path := filepath.Join(state, "console-token")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v, want mode 0600", fi, err)
	}
	code, again, stderr := consoleToken(t, os.Geteuid(), "-config", cfg)
	if code != exitOK || again != first || stderr != "" {
		t.Errorf("second run: exit %d, %q (first %q), stderr %q", code, again, first, stderr)
	}
	if tok, created, err := console.LoadOrCreateToken(path); err != nil || created || tok+"\n" != first {
		t.Errorf("the agent would read %q (created %v, %v), the command printed %q", tok, created, err, first)
	}
}

// TestConsoleTokenFile: status.token_file is where the token goes, its
// directory made when missing.
func TestConsoleTokenFile(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "secrets", "console")
	code, out, stderr := consoleToken(t, os.Geteuid(), "-config", tokenConfig(t, t.TempDir(), tokenFile))
	b, err := os.ReadFile(tokenFile)
	if code != exitOK || err != nil || string(b) != out {
		t.Fatalf("exit %d, printed %q, file %q (%v), stderr %q", code, out, b, err, stderr)
	}
}

// TestConsoleTokenHandedToTheDirectoryOwner: made by root in a state
// directory that belongs to the agent's user, the token becomes theirs, or
// the agent could not read it.
func TestConsoleTokenHandedToTheDirectoryOwner(t *testing.T) {
	state := t.TempDir()
	if os.Geteuid() == 0 {
		// As root (CI): a directory of another user, as under the unit.
		if err := os.Chown(state, 4242, 4242); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := consoleToken(t, 0, "-config", tokenConfig(t, state, "")); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(filepath.Join(state, "console-token"))
	if err != nil {
		t.Fatal(err)
	}
	want, got := dir.Sys().(*syscall.Stat_t), fi.Sys().(*syscall.Stat_t)
	if got.Uid != want.Uid || got.Gid != want.Gid {
		t.Errorf("token owned by %d:%d, want the directory's %d:%d", got.Uid, got.Gid, want.Uid, want.Gid)
	}
}

func TestConsoleTokenErrors(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "console-token"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := tokenConfig(t, state, "")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"a token too short to be the agent's", []string{"-config", cfg}, exitFatal, "shorter than 16 characters"},
		{"an argument", []string{"-config", cfg, "extra"}, exitConfig, "usage: edge-agent console-token"},
		{"a bad flag", []string{"-bogus"}, exitConfig, "bogus"},
		{"no config", []string{"-config", filepath.Join(state, "missing.yaml")}, exitConfig, "missing.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := consoleToken(t, os.Geteuid(), tc.args...)
			if code != tc.code || out != "" || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, stderr, tc.code, tc.msg)
			}
		})
	}
}

// TestConsoleTokenCommand: the command is registered and listed.
func TestConsoleTokenCommand(t *testing.T) {
	state := t.TempDir()
	code, out := run(t, "console-token", "-config", tokenConfig(t, state, ""))
	if code != exitOK || !strings.Contains(out, "made "+filepath.Join(state, "console-token")) {
		t.Errorf("exit %d: %s", code, out)
	}
	if _, usage := run(t, "help"); !strings.Contains(usage, "console-token [-config FILE]") {
		t.Errorf("usage does not list console-token:\n%s", usage)
	}
}
