package camserver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/redact/redacttest"
	"github.com/edge-agent/edge-agent/transport/camserver"
)

// TestTrustUnexpectedResultMaskedBeforeCut: an answer whose `result` is
// neither OK nor BAD was quoted in the error cut to 32 bytes and only then
// masked (by the logger, the status page), so a server echoing the password
// into it left the password's first 32 characters in the link's error. Now
// the result is masked first, then cut.
func TestTrustUnexpectedResultMaskedBeforeCut(t *testing.T) {
	secret := redacttest.Secret100()
	for _, pad := range []int{0, 8, 20} { // the cut keeps 32, 24 and 12 characters of it
		t.Run(fmt.Sprint(pad), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var in struct {
					Pass string `json:"pass"`
				}
				_ = json.NewDecoder(r.Body).Decode(&in)
				_ = json.NewEncoder(w).Encode(map[string]string{"result": strings.Repeat("r", pad) + in.Pass})
			}))
			defer srv.Close()
			base, err := url.Parse(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := camserver.NewClient(base, tr, camserver.ClientOptions{User: "u", Password: secret, Device: "d", Secrets: redact.New()})
			err = c.Authorize(t.Context())
			if err == nil || !strings.Contains(err.Error(), "malformed response") {
				t.Fatalf("Authorize err = %v, want a malformed response", err)
			}
			if leak := redacttest.LeakedPrefix(err.Error(), secret); leak != "" {
				t.Errorf("the error holds %d characters of the password (%q): %v", len(leak), leak, err)
			}
		})
	}
}
