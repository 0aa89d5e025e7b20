package frameio_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// TestResumesAnEarlierVersionsUpload: an asset half uploaded by the version
// that kept the URLs in their own file and the finished parts inline in the
// item's metadata resumes after the upgrade: no second create, only the
// parts not done are sent.
func TestResumesAnEarlierVersionsUpload(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	e := newEnv(t, fake, true)
	data := randomBytes(3 * 4 << 10) // three 4 KiB parts with fastOptions

	// What the earlier version did: create the asset, PUT part 1, write the
	// URLs file and the metadata with the progress inline.
	access, _, _ := fake.IssueTokens()
	body, _ := json.Marshal(map[string]any{"name": "old.mov", "filetype": "video/quicktime", "filesize": len(data), "offset": 0, "channel": 0, "parts": 3})
	req, _ := http.NewRequest(http.MethodPost, fake.URL()+"/v2/devices/assets", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+access)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID   string   `json:"id"`
		URLs []string `json:"upload_urls"`
	}
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || len(created.URLs) != 3 {
		t.Fatalf("create: %v %+v", err, created)
	}
	put, _ := http.NewRequest(http.MethodPut, created.URLs[0], bytes.NewReader(data[:4<<10]))
	put.Header.Set("Content-Type", "video/quicktime")
	put.Header.Set("x-amz-acl", "private")
	if resp, err := http.DefaultClient.Do(put); err != nil || resp.StatusCode != 200 {
		t.Fatalf("part 1: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	it := putAsset(t, e.spool, "old.mov", "video/quicktime", time.Now(), data)
	urls, _ := json.Marshal(created.URLs)
	urlsSum := sha256.Sum256(urls)
	if err := os.MkdirAll(filepath.Join(e.deps.StateDir, "upload-urls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.deps.StateDir, "upload-urls", it.ID+".json"), urls, 0o600); err != nil {
		t.Fatal(err)
	}
	metaPath := filepath.Join(e.spool.Dir(), it.ID+".meta")
	var m map[string]any
	b, _ := os.ReadFile(metaPath)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["progress"] = map[string]any{"asset_id": created.ID, "created": time.Now().UTC(), "parts": 3,
		"urls_sha256": hex.EncodeToString(urlsSum[:]), "done": []bool{true, false, false}}
	b, _ = json.Marshal(m)
	if err := os.WriteFile(metaPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// The upgrade: the spool opens again, the link resumes.
	sp, err := spool.Open(e.spool.Dir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.spool, e.deps.Spool = sp, sp
	l := e.link(t, fastOptions())
	runBG(t, func(ctx context.Context) { _ = l.Work(ctx) })
	agenttest.Eventually(t, "spool drained", func() bool { return sp.Stats().Items == 0 })
	a := fake.Assets()
	if len(a) != 1 || !a[0].Complete || a[0].SHA256 != sum(data) || mustJSON(a[0].PutCounts) != "[1,1,1]" || fake.Stats().Creates != 1 {
		t.Errorf("assets %+v creates %d: want the one asset completed, each part once", a, fake.Stats().Creates)
	}
	if left, _ := os.ReadDir(filepath.Join(e.deps.StateDir, "upload-urls")); len(left) != 0 {
		t.Errorf("the earlier version's URLs file stays: %v", left)
	}
}
