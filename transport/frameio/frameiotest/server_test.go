package frameiotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPresignedPutChecks: the fake refuses what real S3 would, so the link
// cannot pass tests with requests S3 rejects (docs/protocols/frameio-c2c.md §5.2).
func TestPresignedPutChecks(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	access, _, _ := s.IssueTokens()
	body := `{"name":"a.mov","filetype":"video/quicktime","filesize":10,"offset":0,"channel":0,"parts":2}`
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v2/devices/assets", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+access)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		UploadURLs []string `json:"upload_urls"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if len(created.UploadURLs) != 2 {
		t.Fatalf("upload_urls = %v", created.UploadURLs)
	}
	tests := []struct {
		name    string
		url     string
		body    io.Reader
		length  int64
		headers map[string]string
		want    int
	}{
		{"ok", created.UploadURLs[0], bytes.NewReader(make([]byte, 5)), 5, map[string]string{"Content-Type": "video/quicktime", "x-amz-acl": "private"}, 200},
		{"chunked refused", created.UploadURLs[1], io.MultiReader(bytes.NewReader(make([]byte, 5))), -1, map[string]string{"Content-Type": "video/quicktime", "x-amz-acl": "private"}, 501},
		{"wrong content type", created.UploadURLs[1], bytes.NewReader(make([]byte, 5)), 5, map[string]string{"Content-Type": "image/jpeg", "x-amz-acl": "private"}, 403},
		{"missing acl", created.UploadURLs[1], bytes.NewReader(make([]byte, 5)), 5, map[string]string{"Content-Type": "video/quicktime"}, 403},
		{"authorization sent", created.UploadURLs[1], bytes.NewReader(make([]byte, 5)), 5, map[string]string{"Content-Type": "video/quicktime", "x-amz-acl": "private", "Authorization": "Bearer x"}, 400},
		{"wrong part length", created.UploadURLs[1], bytes.NewReader(make([]byte, 4)), 4, map[string]string{"Content-Type": "video/quicktime", "x-amz-acl": "private"}, 400},
		{"bad signature", strings.Replace(created.UploadURLs[1], "Signature=", "Signature=x", 1), bytes.NewReader(make([]byte, 5)), 5, map[string]string{"Content-Type": "video/quicktime", "x-amz-acl": "private"}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPut, tc.url, tc.body)
			req.ContentLength = tc.length
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if a := s.Assets(); len(a) != 1 || a[0].PutCounts[0] != 1 || a[0].PutCounts[1] != 0 || a[0].Complete {
		t.Errorf("assets = %+v", a)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestSocketRefusesBadToken(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.URL() + "/devices/websocket?Authorization=Bearer%20nope&vsn=1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || s.Stats().Forbidden != 1 {
		t.Errorf("status %d forbidden %d", resp.StatusCode, s.Stats().Forbidden)
	}
	http.DefaultClient.CloseIdleConnections()
}
