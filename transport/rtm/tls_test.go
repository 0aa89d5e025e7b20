package rtm_test

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/rtm"
)

// TestTLS checks certificate verification on the signalling socket against
// a TLS server that rejects the token: reaching the 401 means the TLS
// handshake was accepted.
func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	badCA := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(badCA, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		caFile    string
		insecure  bool
		wantInErr string
		permanent bool
	}{
		{name: "unknown CA is refused", wantInErr: "certificate"},
		{name: "ca_file trusts it", caFile: caFile, wantInErr: "HTTP 401", permanent: true},
		{name: "insecure_skip_verify", insecure: true, wantInErr: "HTTP 401", permanent: true},
		{name: "ca_file without a certificate (retried: it may be being replaced)", caFile: badCA, wantInErr: "no certificate"},
	}
	e := newEnv(t, time.Second)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.cfg
			cfg.URL = "wss" + strings.TrimPrefix(srv.URL, "https") + "/api/v2/io"
			cfg.CAFile, cfg.InsecureSkipVerify = tc.caFile, tc.insecure
			link, err := rtm.New(cfg, e.deps, fastOpts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = link.Dial(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Fatalf("Dial = %v, want an error containing %q", err, tc.wantInErr)
			}
			if retry.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v", retry.IsPermanent(err), tc.permanent)
			}
			if strings.Contains(err.Error(), cfg.Token) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}
