package frameio_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

func TestPair(t *testing.T) {
	tests := []struct {
		name      string
		script    []string
		secret    string
		wantErr   string
		wantCodes int
		// wantSleeps are the waits between polls (interval 5 s; slow_down
		// adds 5 s for good).
		wantSleeps []time.Duration
	}{
		{name: "pending then slow_down then success", script: []string{"authorization_pending", "slow_down"},
			wantCodes: 1, wantSleeps: []time.Duration{5 * time.Second, 5 * time.Second, 10 * time.Second}},
		{name: "immediate success", wantCodes: 1, wantSleeps: []time.Duration{5 * time.Second}},
		{name: "expired code renewed automatically", script: []string{"authorization_pending", "expired_token"},
			wantCodes: 2, wantSleeps: []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}},
		{name: "refused code restarts pairing", script: []string{"invalid_grant"},
			wantCodes: 2, wantSleeps: []time.Duration{5 * time.Second, 5 * time.Second}},
		{name: "invalid client is a clear error", script: []string{"invalid_client"}, wantErr: "invalid_client", wantCodes: 1},
		{name: "wrong secret refused at code request", secret: "wrong", wantErr: "client_id/client_secret", wantCodes: 0},
		{name: "invalid request stops", script: []string{"invalid_request"}, wantErr: "invalid_request", wantCodes: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t, frameiotest.Options{})
			fake.SetPairScript(tc.script...)
			cfg := frameio.Config{APIURL: fake.URL(), SocketURL: fake.SocketURL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
			if tc.secret != "" {
				cfg.ClientSecret = tc.secret
			}
			clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			path := filepath.Join(t.TempDir(), "tokens.json")
			var out bytes.Buffer
			id, err := frameio.Pair(context.Background(), cfg, frameio.PairOptions{TokenPath: path, DeviceName: "pi-lab-01",
				Version: "1.4.0", Out: &out, Clock: clk})
			if got := fake.Stats().Codes; got != tc.wantCodes {
				t.Errorf("codes issued = %d, want %d", got, tc.wantCodes)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
					t.Errorf("tokens written after a failed pairing")
				}
				return
			}
			if err != nil {
				t.Fatalf("Pair: %v\n%s", err, out.String())
			}
			if id == nil || id.ID != fake.DeviceID() || id.Project.Name == "" {
				t.Errorf("identity = %+v", id)
			}
			if got := clk.Sleeps(); mustJSON(got) != mustJSON(tc.wantSleeps) {
				t.Errorf("sleeps = %v, want %v", got, tc.wantSleeps)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("token file: %v mode %v", err, fi.Mode())
			}
			tok, err := frameio.LoadTokens(path)
			if err != nil || tok.RefreshToken == "" || !tok.ExpiresAt.Equal(tok.IssuedAt.Add(8*time.Hour)) {
				t.Errorf("tokens = %+v, %v", tok, err)
			}
			s := out.String()
			for _, want := range []string{"pi-lab-01", "Frameio-" + fake.ClientID(), "Code:", "Paired"} {
				if !strings.Contains(s, want) {
					t.Errorf("output lacks %q:\n%s", want, s)
				}
			}
			if strings.Contains(s, tok.AccessToken) || strings.Contains(s, "dc-") {
				t.Errorf("output shows a secret:\n%s", s)
			}
			if v := fake.Stats().ClientVersions; len(v) != 1 || v[0] != "1.4.0" {
				t.Errorf("x-client-version seen = %v", v)
			}
		})
	}
}

func TestPairCancelled(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	fake.SetPairScript("authorization_pending", "authorization_pending", "authorization_pending")
	cfg := frameio.Config{APIURL: fake.URL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
	ctx, cancel := context.WithCancel(context.Background())
	clk := clock.NewFake(time.Now())
	clk.OnSleep = func(time.Duration) {
		if len(clk.Sleeps()) == 2 {
			cancel()
		}
	}
	_, err := frameio.Pair(ctx, cfg, frameio.PairOptions{TokenPath: filepath.Join(t.TempDir(), "t.json"), Clock: clk})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want cancelled", err)
	}
}

func TestRevoke(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	cfg := frameio.Config{APIURL: fake.URL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
	path := filepath.Join(t.TempDir(), "tokens.json")
	pairWithFake(t, fake, path)
	var out bytes.Buffer
	if err := frameio.Revoke(context.Background(), cfg, frameio.PairOptions{TokenPath: path, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tokens still on disk: %v", err)
	}
	if fake.Stats().Revokes != 1 {
		t.Errorf("revokes = %d", fake.Stats().Revokes)
	}
	if err := frameio.Revoke(context.Background(), cfg, frameio.PairOptions{TokenPath: path}); !errors.Is(err, frameio.ErrNotPaired) {
		t.Errorf("second revoke: %v, want ErrNotPaired", err)
	}
}
