package edgeimpulse

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/edge-agent/edge-agent/internal/retry"
)

// TestTrustIngestionKeepsSamples: a captured sample was dropped on any
// 3xx/4xx other than 401/403/408/409/429. A proxy or a deploy answers such
// statuses for minutes; the sample is now kept (retried) unless ingestion
// said the sample itself is invalid (400/413/422 with a reason, or a /files
// verdict refusing it), and each drop is counted by reason.
func TestTrustIngestionKeepsSamples(t *testing.T) {
	type reply struct {
		status int
		ctype  string
		body   string
	}
	cases := []struct {
		name  string
		files bool
		reply reply
		drop  string // "" keeps the sample; else the reason counted
	}{
		{"404 bare", false, reply{404, "text/plain", ""}, ""},
		{"404 proxy page", false, reply{404, "text/html", "<html><body>Not Found</body></html>"}, ""},
		{"405", false, reply{405, "", ""}, ""},
		{"400 proxy page", false, reply{400, "text/html", "<html>400 Bad Request</html>"}, ""},
		{"400 bare", false, reply{400, "", ""}, ""},
		{"413 proxy page", false, reply{413, "text/html", "<html>413 Request Entity Too Large</html>"}, ""},
		{"421", false, reply{421, "text/plain", "missing x-file-name"}, ""},
		{"410", false, reply{410, "text/plain", "gone"}, ""},
		{"300", false, reply{300, "text/plain", "choose"}, ""},
		{"304", false, reply{304, "", ""}, ""},
		{"200 files unreadable", true, reply{200, "text/html", "<html>captive portal</html>"}, ""},
		{"400 with a reason", false, reply{400, "text/plain", "invalid message: signature does not match"}, dropInvalid},
		{"422 with a JSON error", true, reply{422, "application/json", `{"success":false,"error":"unsupported file type"}`}, dropInvalid},
		{"413 with a reason", false, reply{413, "text/plain", "file too large (max 100MB)"}, dropTooLarge},
		{"200 files refused", true, reply{200, "application/json", `{"success":true,"files":[{"success":false,"error":"bad"}]}`}, dropRefused},
	}
	var cur reply
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cur.ctype != "" {
			w.Header().Set("Content-Type", cur.ctype)
		}
		w.WriteHeader(cur.status)
		w.Write([]byte(cur.body))
	}))
	defer srv.Close()
	l := postLink(t, srv.URL, "ei_key")
	stats := l.deps.Stats
	want := map[string]int{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cur = c.reply
			meta := uploadMeta{Path: "/api/training/data", FileName: "x.json", Label: "x", ContentType: "application/json", Files: c.files}
			err := postOnce(t, l, meta)
			if err == nil {
				t.Fatal("delivered")
			}
			if got := retry.IsPermanent(err); got != (c.drop != "") {
				t.Fatalf("err = %v: dropped %v, want %v", err, got, c.drop != "")
			}
			if c.drop != "" {
				want[c.drop]++
			}
		})
	}
	for _, reason := range []string{dropInvalid, dropTooLarge, dropRefused} {
		w := ""
		if want[reason] > 0 {
			w = strconv.Itoa(want[reason])
		}
		if got := stats.Details()["dropped_"+reason]; got != w {
			t.Errorf("dropped_%s = %q, want %q", reason, got, w)
		}
	}
}
