package edgeimpulse_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

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
			r.wait("delivery after recovery", func() bool {
				for _, u := range r.srv.Uploads() {
					if u.Status == 200 {
						return true
					}
				}
				return false
			})
			r.wait("spool empty", func() bool { return r.spool.Stats().Items == 0 })
		})
	}
}
