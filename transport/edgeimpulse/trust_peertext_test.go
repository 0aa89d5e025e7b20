package edgeimpulse_test

import (
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
)

// controlRunes are the characters a peer's text must never carry into a
// log line, an error, /status or a terminal.
const controlRunes = "\x1b\x07\n\r"

// echoingFake is a fake whose refusals repeat the API key it was sent,
// followed by terminal escapes and a forged log line.
func echoingFake(t *testing.T) *eitest.Server {
	t.Helper()
	srv, err := eitest.New(eitest.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.EchoCredentials(true)
	return srv
}

// TestTrustHelloRefusalEchoScrubbed: a refused Hello's reason went into the
// link's error (/status last_error) and the hello_error detail verbatim,
// so a service echoing the key published it on the status page.
func TestTrustHelloRefusalEchoScrubbed(t *testing.T) {
	const key = "ei_wrong_secret_0123456789"
	r := newRig(t, rigOpts{enc: "json", apiKey: key, srv: echoingFake(t)})
	r.waitState(supervisor.Failed)
	last := r.sup.Status().LastError
	detail := r.stats.Details()["hello_error"]
	if !strings.Contains(last, "Invalid API key") {
		t.Fatalf("last error %q does not carry the refusal", last)
	}
	for what, s := range map[string]string{"last_error": last, "hello_error": detail} {
		if strings.Contains(s, key) || strings.ContainsAny(s, controlRunes) {
			t.Errorf("%s = %q: the echoed key or control characters survived", what, s)
		}
		if len(s) > 400 {
			t.Errorf("%s is %d bytes: peer text is not bounded", what, len(s))
		}
	}
}

// TestTrustIngestionEchoScrubbed: an ingestion failure's body (up to 200
// bytes of anything) went into the upload error raw: logged, sent back as
// the sample's error, and kept as the spool's last error.
func TestTrustIngestionEchoScrubbed(t *testing.T) {
	srv := echoingFake(t)
	r := newRig(t, rigOpts{enc: "json", srv: srv})
	r.waitUp()
	srv.FailUploads(500)
	r.sampleCycle(eitest.SampleRequest{Sensor: "accel", Label: "echo", Length: 500, Interval: 10})
	e := r.lastSampleError()
	if !strings.Contains(e, "simulated failure") {
		t.Fatalf("sample error %q does not carry the ingestion answer", e)
	}
	if strings.Contains(e, srv.APIKey()) || strings.ContainsAny(e, controlRunes) {
		t.Errorf("sample error %q: the echoed key or control characters survived", e)
	}
}
