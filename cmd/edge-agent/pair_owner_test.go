package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// TestTrustPairOwnershipDecision: who owns what `pair` writes, for every
// combination of the user it runs as and the state directory's owner.
func TestTrustPairOwnershipDecision(t *testing.T) {
	agent := &fileOwner{uid: 998, gid: 997}
	me := &fileOwner{uid: 1000, gid: 1000}
	tests := []struct {
		name      string
		euid      int
		owner     *fileOwner
		service   *fileOwner
		want      *fileOwner
		wantError string
	}{
		{name: "root, dir of the agent: hand the files over", euid: 0, owner: agent, service: agent, want: agent},
		{name: "root, dir of another user: that user", euid: 0, owner: me, service: agent, want: me},
		{name: "the agent's user itself", euid: 998, owner: agent, service: agent},
		{name: "root, root's dir (agent run as root)", euid: 0, owner: &fileOwner{}, service: agent},
		{name: "root, no dir yet: the service user", euid: 0, service: agent, want: agent},
		{name: "root, no dir, no service user (a dev box)", euid: 0},
		{name: "a user, no dir yet: theirs", euid: 1000, service: agent},
		{name: "another user: refused with the command", euid: 1000, owner: agent, service: agent,
			wantError: "/var/lib/edge-agent belongs to edge-agent, and the tokens must be theirs for the agent to use them; run: sudo -u edge-agent edge-agent pair -link fio"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pairOwnership(tc.euid, tc.owner, "edge-agent", tc.service, "/var/lib/edge-agent", "edge-agent pair -link fio")
			if tc.wantError != "" {
				if err == nil || err.Error() != tc.wantError {
					t.Fatalf("err = %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("hand over to %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTrustPairCommandQuoted(t *testing.T) {
	got := pairCommand([]string{"-config", "/etc/my agent/config.yaml", "-link", "fio"})
	if want := `edge-agent pair -config '/etc/my agent/config.yaml' -link fio`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestTrustPairAsRootLeavesTheAgentsFiles: `sudo edge-agent pair` wrote
// links/ and tokens.json owned by root; the daemon (another user) then
// failed with permission denied. Run as root (as CI is) against a state
// directory owned by another user, pair must leave every file it wrote to
// that user; run as a third user it must refuse and say what to run.
func TestTrustPairAsRootLeavesTheAgentsFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to hand files to another user (the decision itself is TestTrustPairOwnershipDecision)")
	}
	const agentUID, agentGID = 4242, 4243
	fake, err := frameiotest.New(frameiotest.Options{Interval: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	cfgPath, stateDir := pairConfig(t, fake, "fio")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(stateDir, agentUID, agentGID); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"pair", "-config", cfgPath}, &out, &errOut); code != 0 {
		t.Fatalf("pair exit %d: %s", code, errOut.String())
	}
	for _, p := range []string{filepath.Join(stateDir, "links"), filepath.Join(stateDir, "links", "fio"),
		filepath.Join(stateDir, "links", "fio", frameio.TokenFileName)} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != agentUID || st.Gid != agentGID {
			t.Errorf("%s is owned by %d:%d, want the agent's %d:%d", p, st.Uid, st.Gid, agentUID, agentGID)
		}
	}
	if fi, _ := os.Stat(filepath.Join(stateDir, "links", "fio", frameio.TokenFileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens mode %v", fi.Mode())
	}

	// Another (non-root) user: refused before anything is written.
	os.RemoveAll(filepath.Join(stateDir, "links"))
	out.Reset()
	errOut.Reset()
	if code := pairAs(context.Background(), 1000, []string{"-config", cfgPath}, &out, &errOut); code != exitFatal {
		t.Fatalf("pair as uid 1000 exit %d", code)
	}
	if want := "run: sudo -u #4242 edge-agent pair -config " + cfgPath; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q lacks %q", errOut.String(), want)
	}
	if _, err := os.Lstat(filepath.Join(stateDir, "links")); !os.IsNotExist(err) {
		t.Errorf("refused pair wrote files: %v", err)
	}
}
