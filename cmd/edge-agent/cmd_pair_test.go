package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// pairConfig writes a config with the given frameio links pointing at fake.
func pairConfig(t *testing.T, fake *frameiotest.Server, links ...string) (path, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(fake.ClientSecret()), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir = filepath.Join(dir, "state")
	var b strings.Builder
	fmt.Fprintf(&b, "device: {name: pi-test}\nstate_dir: %s\nstatus: {listen: \"\"}\nlinks:\n", stateDir)
	for _, name := range links {
		fmt.Fprintf(&b, "  - name: %s\n    kind: frameio\n    frameio:\n      api_url: %s\n      socket_url: %s\n      client_id: %s\n      client_secret_file: %s\n",
			name, fake.URL(), fake.SocketURL(), fake.ClientID(), secret)
	}
	path = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, stateDir
}

func TestCmdPair(t *testing.T) {
	tests := []struct {
		name     string
		links    []string
		args     []string
		script   []string
		wantCode int
		wantOut  string
		wantErr  string
		tokensIn string // link whose state dir must hold tokens
	}{
		{name: "only link", links: []string{"fio"}, wantCode: 0, wantOut: "Paired", tokensIn: "fio"},
		{name: "named link", links: []string{"a", "b"}, args: []string{"-link", "b"}, script: []string{"authorization_pending"},
			wantCode: 0, wantOut: "Code:", tokensIn: "b"},
		{name: "ambiguous", links: []string{"a", "b"}, wantCode: 1, wantErr: "choose one with -link"},
		{name: "unknown link", links: []string{"a"}, args: []string{"-link", "zz"}, wantCode: 1, wantErr: `no frameio link named "zz"`},
		{name: "no frameio link", wantCode: 1, wantErr: "no frameio link"},
		{name: "refused client", links: []string{"fio"}, script: []string{"invalid_client"}, wantCode: 1, wantErr: "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			fake, err := frameiotest.New(frameiotest.Options{Interval: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer fake.Close()
			fake.SetPairScript(tc.script...)
			cfgPath, stateDir := pairConfig(t, fake, tc.links...)
			var out, errOut bytes.Buffer
			code := dispatch(context.Background(), append([]string{"pair", "-config", cfgPath}, tc.args...), &out, &errOut)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) || !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("stdout %q lacks %q or stderr %q lacks %q", out.String(), tc.wantOut, errOut.String(), tc.wantErr)
			}
			if tc.tokensIn == "" {
				return
			}
			tokens := filepath.Join(stateDir, "links", tc.tokensIn, frameio.TokenFileName)
			fi, err := os.Stat(tokens)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("tokens %s: %v", tokens, err)
			}
			if !strings.Contains(out.String(), "pi-test") {
				t.Errorf("device name not shown: %s", out.String())
			}
			// -revoke deauthorizes and deletes the tokens.
			out.Reset()
			args := append([]string{"pair", "-config", cfgPath, "-revoke"}, tc.args...)
			if code := dispatch(context.Background(), args, &out, &errOut); code != 0 {
				t.Fatalf("revoke exit %d: %s", code, errOut.String())
			}
			if _, err := os.Stat(tokens); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("tokens remain after -revoke")
			}
			if fake.Stats().Revokes != 1 {
				t.Errorf("revokes = %d", fake.Stats().Revokes)
			}
		})
	}
}

func TestCmdPairCancelled(t *testing.T) {
	defer goleak.VerifyNone(t)
	fake, err := frameiotest.New(frameiotest.Options{Interval: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.SetPairScript("authorization_pending", "authorization_pending", "authorization_pending")
	cfgPath, _ := pairConfig(t, fake, "fio")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if code := dispatch(ctx, []string{"pair", "-config", cfgPath}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "cancelled") {
		t.Errorf("stderr = %q", errOut.String())
	}
}

func TestCmdPairBadConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"pair", "-config", filepath.Join(t.TempDir(), "missing.yaml")}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
