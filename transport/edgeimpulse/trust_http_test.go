package edgeimpulse_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

// TestTrustIngestionRedirects: ingestion answers the upload with a redirect
// to another server. On main, 301/302/303 were followed with x-api-key
// (Go forwards it to any host) and the other server's 200 counted as
// delivered; 307/308 dropped the sample as refused. Now no redirect is
// followed, the key never reaches the other server, the sample stays
// spooled and is delivered once ingestion answers again.
func TestTrustIngestionRedirects(t *testing.T) {
	cases := []struct {
		name   string
		status int
		tls    bool // https ingestion redirecting to http on the same host name
	}{
		{"301 to another host", 301, false},
		{"302 to another host", 302, false},
		{"303 to another host", 303, false},
		{"307 to another host", 307, false},
		{"308 to another host", 308, false},
		{"302 https to http same host", 302, true},
		{"308 https to http same host", 308, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := httpxtest.NewSink(false) // http://127.0.0.1:<other port>
			defer sink.Close()
			r := newRig(t, rigOpts{enc: "json", tls: c.tls, caFile: c.tls, names: []string{"accel"}})
			r.waitUp()
			r.srv.RedirectUploads(c.status, sink.URL())
			got := r.sampleCycle(eitest.SampleRequest{Sensor: "accel", Label: "redirected", Length: 200, Interval: 10})
			if len(got) == 0 || got[len(got)-1] != "sample" {
				t.Fatalf("device sent %v, want a failed first upload (sample:false)", got)
			}
			e := r.lastSampleError()
			if !strings.Contains(e, "redirect refused") || !strings.Contains(e, fmt.Sprint(c.status)) || !strings.Contains(e, "kept") {
				t.Errorf("sample error %q should name the refused redirect and its status and say the sample is kept", e)
			}
			if n := len(sink.Requests()); n != 0 || sink.Saw(r.srv.APIKey()) {
				t.Fatalf("%d requests reached the other server (key seen: %v)", n, sink.Saw(r.srv.APIKey()))
			}
			if st := r.spool.Stats(); st.Items != 1 || st.Rejected != 0 {
				t.Fatalf("spool %+v, want the sample kept and nothing rejected", st)
			}
			r.srv.RedirectUploads(0, "")
			r.waitUpload("delivery once ingestion answers again", func(u eitest.Upload) bool { return u.Status == 200 && u.Label == "redirected" })
			r.wait("spool empty", func() bool { return r.spool.Stats().Items == 0 })
			if r.srv.Redirected() == 0 || len(sink.Requests()) != 0 {
				t.Errorf("redirected %d, sink saw %d", r.srv.Redirected(), len(sink.Requests()))
			}
		})
	}
}

// TestTrustIngestionHugeRetryAfter: ingestion answers 503 with a Retry-After
// of ten years (as seconds, and as an HTTP date). On main the spool slept
// 87600 h; now it waits MaxRetryAfter at most, and the sample is delivered
// once ingestion recovers.
func TestTrustIngestionHugeRetryAfter(t *testing.T) {
	for _, v := range []string{"315360000", time.Now().AddDate(10, 0, 0).UTC().Format(http.TimeFormat)} {
		t.Run(v, func(t *testing.T) {
			fc := clock.NewFake(time.Now())
			fc.OnSleep = func(time.Duration) { time.Sleep(5 * time.Millisecond) } // no busy loop
			r := newRig(t, rigOpts{enc: "json", names: []string{"accel"}, spoolClock: fc})
			r.waitUp()
			r.srv.SetUploadRetryAfter(v)
			r.srv.FailUploads(503)
			r.sampleCycle(eitest.SampleRequest{Sensor: "accel", Label: "waited", Length: 200, Interval: 10})
			r.wait("a few retries", func() bool { return len(fc.Sleeps()) >= 3 })
			r.srv.FailUploads(0)
			r.wait("spool empty", func() bool { return r.spool.Stats().Items == 0 })
			longest := time.Duration(0)
			for _, d := range fc.Sleeps() {
				longest = max(longest, d)
			}
			if longest != retry.MaxRetryAfter {
				t.Errorf("longest spool wait %v, want the cap %v (sleeps %v)", longest, retry.MaxRetryAfter, fc.Sleeps())
			}
		})
	}
}

// TestTrustIngestion4xxKeepsSample: end to end, a sample captured while
// ingestion answers a bare 404 or 405 (a proxy, a deploy) stays spooled and
// is delivered once ingestion is back; it used to be dropped as refused.
func TestTrustIngestion4xxKeepsSample(t *testing.T) {
	for _, status := range []int{404, 405} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			r := newRig(t, rigOpts{enc: "json"})
			r.waitUp()
			r.srv.FailUploads(status)
			r.sampleCycle(eitest.SampleRequest{Sensor: "accel", Label: "kept", Length: 1000, Interval: 10})
			if e := r.lastSampleError(); !strings.Contains(e, strconv.Itoa(status)) {
				t.Errorf("error %q should name the %d", e, status)
			}
			r.wait("a retried upload", func() bool {
				n := 0
				for _, u := range r.srv.Uploads() {
					if u.Status == status {
						n++
					}
				}
				return n >= 2
			})
			if r.spool.Stats().Items != 1 || r.spool.Stats().Rejected != 0 {
				t.Fatalf("spool %+v, want the sample kept", r.spool.Stats())
			}
			r.srv.FailUploads(0)
			r.waitUpload("delivery after recovery", stored)
			r.wait("spool empty", func() bool { return r.spool.Stats().Items == 0 })
		})
	}
}
