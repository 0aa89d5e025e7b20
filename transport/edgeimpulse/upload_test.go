package edgeimpulse

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// TestPostClassifiesReplies checks how each ingestion reply is classified
// for the spool: delivered, retried (with the peer's wait) or refused.
func TestPostClassifiesReplies(t *testing.T) {
	type reply struct {
		status int
		header map[string]string
		body   string
	}
	cases := []struct {
		name      string
		files     bool
		reply     reply
		ok        bool
		permanent bool
		after     time.Duration
	}{
		{"200 data", false, reply{200, nil, "idle.json"}, true, false, 0},
		{"200 files", true, reply{200, nil, `{"success":true,"files":[{"success":true}]}`}, true, false, 0},
		{"200 files refused", true, reply{200, nil, `{"success":true,"files":[{"success":false,"error":"bad"}]}`}, false, true, 0},
		{"409 duplicate is delivered", false, reply{409, nil, "duplicate"}, true, false, 0},
		{"400 refused", false, reply{400, nil, "invalid message"}, false, true, 0},
		{"401 retried", false, reply{401, nil, "nope"}, false, false, 0},
		{"503 retry-after", false, reply{503, map[string]string{"Retry-After": "7"}, "busy"}, false, false, 7 * time.Second},
		{"429 retried", false, reply{429, nil, ""}, false, false, 0},
		{"500 retried", false, reply{500, nil, ""}, false, false, 0},
	}
	var cur reply
	var gotKey, gotName, gotLabel string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey, gotName, gotLabel = r.Header.Get("x-api-key"), r.Header.Get("x-file-name"), r.Header.Get("x-label")
		for k, v := range cur.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(cur.status)
		w.Write([]byte(cur.body))
	}))
	defer srv.Close()

	l := postLink(t, srv.URL, "ei_key")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cur = c.reply
			meta := uploadMeta{Path: "/api/training/data", FileName: "my label.json", Label: "my label", ContentType: "application/json", Files: c.files}
			err := postOnce(t, l, meta)
			if (err == nil) != c.ok || retry.IsPermanent(err) != c.permanent {
				t.Fatalf("err = %v, want ok %v permanent %v", err, c.ok, c.permanent)
			}
			if d, _ := retry.After(err); d != c.after {
				t.Errorf("retry after %v, want %v", d, c.after)
			}
			if gotKey != "ei_key" || gotName != "my%20label.json" || gotLabel != "my%20label" {
				t.Errorf("headers key %q name %q label %q", gotKey, gotName, gotLabel)
			}
			if err != nil && strings.Contains(err.Error(), "ei_key") {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

// postLink returns a link whose ingestion is url, with API key key, over a
// hub holding one synthetic motion sensor and a spool of its own; for tests
// that call post directly. Its idle connections close when the test ends.
func postLink(t *testing.T, url, key string) *Link {
	t.Helper()
	mc := synthetic.Config{Signal: "motion"}
	mc.SetDefaults()
	deps := agenttest.Deps(t, "ei", agenttest.Hub(t, nil, synthetic.NewMotion("accel", mc)), nil)
	deps.Spool = agenttest.Spool(t, spool.Options{})
	l, err := New(Config{APIKey: key, IngestionURL: url, Sensors: []string{"accel"}}, deps, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.httpTr.CloseIdleConnections)
	return l
}

// postOnce spools a "{}" sample described by meta, posts it once as the
// worker would, removes it and returns what post returned.
func postOnce(t *testing.T, l *Link, meta uploadMeta) error {
	t.Helper()
	sp := l.deps.Spool
	it, err := sp.Put(spoolKind, meta, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Remove(it.ID)
	f, err := sp.Open(it.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return l.post(context.Background(), it, f)
}
