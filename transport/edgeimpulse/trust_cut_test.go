package edgeimpulse

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/redact/redacttest"
)

// TestTrustUnknownKeyNotCutUnmasked: an unknown message's keys were cut to
// 64 bytes in the decoder, which knows no secret, and logged; a key holding
// an echoed API key kept its first 40 characters, which no mask matches.
// A long key is now named by its length, and the rest go through the link's
// masking before the log.
func TestTrustUnknownKeyNotCutUnmasked(t *testing.T) {
	secret := redacttest.Secret100()
	key := strings.Repeat("k", 24) + secret // a 64-byte cut keeps the secret's first 40
	for _, enc := range []Encoding{JSON, CBOR} {
		t.Run(string(enc), func(t *testing.T) {
			b, err := EncodeMessage(enc, map[string]int{key: 1, "other": 2})
			if err != nil {
				t.Fatal(err)
			}
			in, err := DecodeMessage(enc, b)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(in.Keys, " ")
			if !strings.Contains(got, "other") {
				t.Fatalf("keys %q: the short key is missing", in.Keys)
			}
			if leak := redacttest.LeakedPrefix(got, secret); leak != "" {
				t.Errorf("keys %q hold %d characters of the secret", in.Keys, len(leak))
			}
		})
	}
}

// TestTrustIngestionReplyHeadNoSecretPrefix: only the first 64 KiB of an
// ingestion reply are read, a cut made before masking. A reply whose first
// 64 KiB end in the start of the echoed API key, after padding that
// cleaning strips, put that start into the upload error (logged, sent to
// Studio, kept as the spool's last error). The head's tail that begins a
// secret is dropped now.
func TestTrustIngestionReplyHeadNoSecretPrefix(t *testing.T) {
	secret := redacttest.Secret100()
	for _, pad := range []string{"\x01", "x"} {
		t.Run(fmt.Sprintf("%q", pad), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusServiceUnavailable)
				key := r.Header.Get("x-api-key")
				// The 64 KiB read ends 40 characters into the echoed key.
				w.Write([]byte(strings.Repeat(pad, 64<<10-40) + key + " more text"))
			}))
			defer srv.Close()
			l := postLink(t, srv.URL, secret)
			meta := uploadMeta{Path: "/api/training/data", FileName: "x.json", Label: "x", ContentType: "application/json"}
			err := postOnce(t, l, meta)
			if err == nil {
				t.Fatal("delivered")
			}
			if leak := redacttest.LeakedPrefix(err.Error(), secret); leak != "" {
				t.Errorf("the upload error holds %d characters of the API key (%q): %.300s", len(leak), leak, err)
			}
		})
	}
}
