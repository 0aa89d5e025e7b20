package camservertest_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/camserver/frame"
)

// TestCurl talks to the fake with curl requests shaped like the protocol
// documentation's examples, with the corrected methods (PUT input.raw, POST
// JSON) and exact lengths, over TLS (--http2, ALPN) and h2c (prior knowledge).
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed; .ci/run installs it")
	}
	v, err := exec.Command(curl, "-V").Output()
	if err != nil || !strings.Contains(string(v), "HTTP2") {
		t.Skip("this curl lacks HTTP/2 support (no HTTP2 in curl -V features)")
	}
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tls", true}, {"h2c", false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := camservertest.New("127.0.0.1:0", camservertest.Options{TLS: tc.tls})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			dir := t.TempDir()
			base := []string{"-sS", "--max-time", "10"}
			if tc.tls {
				ca := filepath.Join(dir, "ca.pem")
				os.WriteFile(ca, srv.CAPEM(), 0o644)
				base = append(base, "--http2", "--cacert", ca)
			} else {
				base = append(base, "--http2-prior-knowledge")
			}
			run := func(args ...string) (string, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				out, err := exec.CommandContext(ctx, curl, append(append([]string{}, base...), args...)...).CombinedOutput()
				return string(out), err
			}
			out, err := run("-d", `{"name":"demo","pass":"demo-pass","device":"curl-dev","meta":"{}"}`, srv.URL()+"/authorize.json")
			if err != nil {
				t.Fatalf("authorize: %v: %s", err, out)
			}
			var auth struct{ Shash, Result string }
			if json.Unmarshal([]byte(out), &auth) != nil || auth.Result != "OK" {
				t.Fatalf("authorize answer %q", out)
			}
			sh := `{"shash":"` + auth.Shash + `"}`
			for _, c := range []struct {
				name string
				args []string
				want string
			}{
				{"heartBit", []string{"-d", sh, srv.URL() + "/heartBit.json"}, `"result":"OK"`},
				{"getConfig", []string{"-d", sh, srv.URL() + "/getConfig.json"}, `"kind":4`},
				{"addMsgs", []string{"-d", `{"shash":"` + auth.Shash + `","msg":"hello","params":{"a":1}}`, srv.URL() + "/addMsgs.json"}, `"result":"OK"`},
				{"addRecord", []string{"--data-binary", "JPEGDATA", srv.URL() + "/addRecord.json?shash=" + url.QueryEscape(auth.Shash) + "&meta=JPEG"}, `"result":"OK"`},
				{"getRecordCount", []string{"-d", sh, srv.URL() + "/getRecordCount.json"}, `"device":"curl-dev"`},
				{"getStreams", []string{"-d", sh, srv.URL() + "/getStreams.json"}, `"devices":[]`},
				{"GET json is 405", []string{"-o", "/dev/null", "-w", "%{http_code}", srv.URL() + "/heartBit.json"}, "405"},
				{"POST input.raw is 404", []string{"-o", "/dev/null", "-w", "%{http_code}", "-d", "x", srv.URL() + "/input.raw"}, "404"},
			} {
				out, err := run(c.args...)
				if err != nil || !strings.Contains(out, c.want) {
					t.Fatalf("%s: %v: %q, want %q", c.name, err, out, c.want)
				}
			}
			// PUT input.raw with one frame: the frame arrives; curl's END_STREAM
			// earns a reset (curl reports an error), never a response.
			fp := filepath.Join(dir, "frame.bin")
			f, _ := frame.Encode([]byte("curl-frame"))
			os.WriteFile(fp, f, 0o644)
			out, err = run("-X", "PUT", "--data-binary", "@"+fp, srv.URL()+"/input.raw?shash="+url.QueryEscape(auth.Shash)+"&subproto=RAW_JPEG&delta=400")
			if err == nil {
				t.Fatalf("input.raw got an answer: %q", out)
			}
			if srv.Stats().Frames != 1 {
				t.Fatalf("frames received %d, want 1 (%s)", srv.Stats().Frames, out)
			}
		})
	}
}
