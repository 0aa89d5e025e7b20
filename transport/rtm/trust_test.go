package rtm_test

import (
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/faultproxy"
	"github.com/edge-agent/edge-agent/internal/logx/logxtest"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/redact/redacttest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// trustSession dials one session against the fake, logging into a buffer,
// and serves it until the test ends. setup may change the env first.
func trustSession(t *testing.T, setup ...func(*env)) (*env, *logxtest.Buffer, <-chan error) {
	t.Helper()
	e := newEnv(t, time.Second)
	logs := &logxtest.Buffer{}
	e.deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, f := range setup {
		f(e)
	}
	return e, logs, serveSession(t, manualLink(t, e))
}

// marker sends a recording_state the link shows in /status and waits for
// it: every frame sent before it has been handled.
func marker(t *testing.T, e *env, served <-chan error, state string) {
	t.Helper()
	e.fake.SendRaw([]byte(`{"type":"recording_state","data":{"state":"` + state + `"}}`))
	agenttest.EventuallyWithin(t, 30*time.Second, "the marker message", func() bool { return e.stats.Details()["recording"] == state })
	select {
	case err := <-served:
		t.Fatalf("session ended: %v", err)
	default:
	}
}

// TestTrustRemoteCandidatesCappedForTheSession: candidates after the answer
// were applied without limit (20 000 cost 40 s of CPU, ~15 000 goroutines and
// 130 MiB in pion). Now the session takes at most 64 distinct ones, drops the
// rest (counted in /status) and repeats cost nothing.
func TestTrustRemoteCandidatesCappedForTheSession(t *testing.T) {
	e, _, served := trustSession(t)
	marker(t, e, served, rtm.RecordingStopped)
	runtime.GC()
	base := runtime.NumGoroutine()
	const n = 3000
	peak := 0
	for i := range n {
		line := fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 20000+i)
		e.fake.SendRaw([]byte(`{"type":"candidate","data":{"candidate":{"candidate":"` + line + `","sdpMid":"0","sdpMLineIndex":0}}}`))
		if i%8 == 0 { // and a duplicate of an early one
			e.fake.SendRaw([]byte(`{"type":"candidate","data":{"candidate":{"candidate":"candidate:0 1 udp 2130706431 127.0.0.1 20000 typ host","sdpMid":"0","sdpMLineIndex":0}}}`))
		}
		if i%100 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	marker(t, e, served, rtm.RecordingFailed)
	peak = max(peak, runtime.NumGoroutine())
	dropped, _ := strconv.Atoi(e.stats.Details()["remote_candidates_dropped"])
	if dropped < n-64 || dropped > n {
		t.Errorf("remote_candidates_dropped = %d, want about %d (all but the session's 64)", dropped, n-64)
	}
	if grow := peak - base; grow > 200 {
		t.Errorf("goroutines grew by %d during a flood of %d candidates (want bounded by the cap)", grow, n)
	}
}

// TestTrustUnknownTypesBounded: every distinct unknown type (up to 256 KiB
// each) was kept in the log-once map and logged whole at info: 1000 such
// types held 100 MiB. Now the set is bounded, and so is the logged text.
func TestTrustUnknownTypesBounded(t *testing.T) {
	e, logs, served := trustSession(t)
	marker(t, e, served, rtm.RecordingStopped)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n, size = 256, 16 << 10
	pad := strings.Repeat("t", size)
	for i := range n {
		e.fake.SendRaw([]byte(`{"type":"` + pad + strconv.Itoa(i) + `","data":{}}`))
	}
	marker(t, e, served, rtm.RecordingFailed)
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap %+d KiB", (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 2<<20 {
		t.Errorf("heap grew by %.1f MiB after %d unknown types of %d KiB (want bounded)", float64(grow)/(1<<20), n, size>>10)
	}
	lines := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "message type not handled") {
			lines++
			if len(l) > 1024 {
				t.Fatalf("logged line of %d bytes", len(l))
			}
		}
	}
	if lines == 0 || lines > 32 {
		t.Errorf("%d log lines for %d distinct unknown types, want 1..32", lines, n)
	}
}

// TestTrustUnknownTypeMaskedBeforeCut: an unknown type was cut to 64 bytes
// and then masked, so a token the service echoed in it, cut in the middle,
// matched no mask and its first 40 characters reached the journal (the
// agent's logging backstop masks whole secrets only). Now the type is
// masked first, then cut.
func TestTrustUnknownTypeMaskedBeforeCut(t *testing.T) {
	secret := redacttest.Secret100()
	e, logs, served := trustSession(t, func(e *env) {
		e.deps.Secrets = redact.New()
		e.deps.Secrets.Add(secret)
	})
	marker(t, e, served, rtm.RecordingStopped)
	// 24 bytes before it: a 64-byte cut keeps the secret's first 40.
	e.fake.SendRaw([]byte(`{"type":"` + strings.Repeat("t", 24) + secret + `","data":{}}`))
	marker(t, e, served, rtm.RecordingFailed)
	out := logs.String()
	if !strings.Contains(out, "message type not handled") {
		t.Fatalf("the unknown type was not logged:\n%s", out)
	}
	if leak := redacttest.LeakedPrefix(out, secret); leak != "" {
		t.Errorf("the log holds %d characters of the secret (%q):\n%s", len(leak), leak, out)
	}
}

// TestTrustTokenURLRefusalIsRetried: token_url answering 401/403 made the
// link failed for good. Our backend or a proxy in front of it may answer so
// for minutes, and the device key may be rotated in token_url_key_file: the
// link retries with backoff and reads the file again.
func TestTrustTokenURLRefusalIsRetried(t *testing.T) {
	t.Run("refusals then ok", func(t *testing.T) {
		e := newEnv(t, time.Second)
		front, err := faultproxy.NewFront("http://" + e.fake.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(front.Close)
		front.FailNext(rtmtest.TokenPath, http.StatusUnauthorized, 2, "<html>401 Authorization Required</html>")
		cfg := tokenURLConfig(e)
		cfg.TokenURL = front.URL() + rtmtest.TokenPath
		sup := runLink(t, e, cfg)
		agenttest.Eventually(t, "the link up after the refusals", func() bool {
			if st := sup.Status(); st.State == supervisor.Failed {
				t.Fatalf("link failed for good: %s", st.LastError)
			}
			return activeSessions(e.fake) >= 1 && sup.Status().State == supervisor.Up
		})
		if front.Failed() != 2 || e.fake.Minted() != 1 {
			t.Errorf("front refused %d, fake minted %d; want 2 and 1", front.Failed(), e.fake.Minted())
		}
	})
	t.Run("rotated key file", func(t *testing.T) {
		e := newEnv(t, time.Second)
		keyFile := filepath.Join(t.TempDir(), "device-key")
		if err := os.WriteFile(keyFile, []byte("an-old-revoked-device-key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := tokenURLConfig(e)
		cfg.TokenURLKey, cfg.TokenURLKeyFile = "an-old-revoked-device-key", keyFile // as Validate reads it
		sup := runLink(t, e, cfg)
		agenttest.Eventually(t, "a few refused tries", func() bool {
			if st := sup.Status(); st.State == supervisor.Failed {
				t.Fatalf("link failed for good: %s", st.LastError)
			}
			st := sup.Status()
			return st.Reconnects >= 2 && strings.Contains(st.LastError, "device key rejected")
		})
		if err := os.WriteFile(keyFile, []byte(e.fake.DeviceKey()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		waitActive(t, e, sup, 0)
		if msg := sup.Status().LastError; strings.Contains(msg, e.fake.DeviceKey()) || strings.Contains(msg, "an-old-revoked") {
			t.Errorf("last error leaks a key: %q", msg)
		}
	})
}

// TestTrustCAFileMissingAtRedial: ca_file is read at every dial; missing
// (being replaced) it made the link failed for good. Now the CA read before
// is used (said in the status), and at the first dial it is retried. The
// server is a TLS endpoint that refuses the token: reaching its 401 means
// the handshake was verified.
func TestTrustCAFileMissingAtRedial(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	e := newEnv(t, time.Second)
	cfg := e.cfg
	cfg.URL = "wss" + strings.TrimPrefix(srv.URL, "https") + "/api/v2/io"
	cfg.CAFile = caFile
	link, err := rtm.New(cfg, e.deps, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = link.Dial(t.Context())
	if err == nil || retry.IsPermanent(err) || !strings.Contains(err.Error(), "ca_file") {
		t.Fatalf("first dial without the file = %v, want a retried ca_file error", err)
	}
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = link.Dial(t.Context()); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("dial with the file = %v, want the server's 401", err)
	}
	if err := os.Remove(caFile); err != nil {
		t.Fatal(err)
	}
	if _, err = link.Dial(t.Context()); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("re-dial with the file missing = %v, want the server's 401 (the CA read before)", err)
	}
	if d := e.stats.Details()["ca_file"]; !strings.Contains(d, "read before") {
		t.Errorf("ca_file detail = %q", d)
	}
}
