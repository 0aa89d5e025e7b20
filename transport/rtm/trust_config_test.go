package rtm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// TestTrustICECredentialFile: a TURN credential had only an inline form, so
// it had to sit in config.yaml. credential_file reads it from a 0600 file
// like every other secret; inline still works and is warned about, and both
// at once is an error.
func TestTrustICECredentialFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "turn")
	if err := os.WriteFile(file, []byte("turn-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		ice      ICEServer
		want     string // the resolved credential
		problem  string
		warnings string
	}{
		{name: "file", ice: ICEServer{URLs: []string{"turn:t.example:3478"}, Username: "u", CredentialFile: file}, want: "turn-secret"},
		{name: "inline warned", ice: ICEServer{URLs: []string{"turn:t.example:3478"}, Credential: "inline-secret"},
			want: "inline-secret", warnings: "ice_servers[0].credential: secret given inline; prefer ice_servers[0].credential_file"},
		{name: "both", ice: ICEServer{URLs: []string{"turn:t"}, Credential: "x", CredentialFile: file}, problem: "give either"},
		{name: "stun needs none", ice: ICEServer{URLs: []string{"stun:s.example:3478"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{URL: "wss://x/api/v2/io", Token: "t", ClientID: "c", Video: "cam", ICEServers: []ICEServer{tc.ice}}
			c.SetDefaults()
			v := conf.NewValidator()
			c.Validate(v)
			var problems, warnings []string
			for _, p := range v.Problems() {
				problems = append(problems, p.Path+": "+p.Msg)
			}
			for _, p := range v.Warnings() {
				warnings = append(warnings, p.Path+": "+p.Msg)
			}
			if tc.problem == "" && len(problems) > 0 || tc.problem != "" && !strings.Contains(strings.Join(problems, "\n"), tc.problem) {
				t.Fatalf("problems %q, want %q", problems, tc.problem)
			}
			if tc.problem != "" {
				return
			}
			if got := c.ICEServers[0].Credential; got != tc.want {
				t.Errorf("credential = %q, want %q", got, tc.want)
			}
			if tc.warnings != "" && !strings.Contains(strings.Join(warnings, "\n"), tc.warnings) {
				t.Errorf("warnings %q, want %q", warnings, tc.warnings)
			}
		})
	}
}
