package camservertest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/camserver/frame"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// raw is a bare HTTP/2 client (h2c prior knowledge) for shaping requests the
// agent never sends.
type raw struct {
	t   *testing.T
	srv *camservertest.Server
	rt  *http2.Transport
}

func newRaw(t *testing.T, o camservertest.Options) *raw {
	srv, err := camservertest.New("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	rt := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, n, a)
	}}
	t.Cleanup(func() {
		rt.CloseIdleConnections()
		srv.Close()
	})
	return &raw{t: t, srv: srv, rt: rt}
}

func (r *raw) req(method, path string, body io.Reader, cl int64, hdr http.Header) (*http.Response, []byte, error) {
	req, _ := http.NewRequest(method, r.srv.URL()+path, body)
	req.ContentLength = cl
	if hdr != nil {
		req.Header = hdr
	}
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func (r *raw) json(path string, v any, hdr http.Header) map[string]any {
	r.t.Helper()
	b, _ := json.Marshal(v)
	resp, body, err := r.req(http.MethodPost, path, bytes.NewReader(b), int64(len(b)), hdr)
	if err != nil {
		r.t.Fatalf("%s: %v", path, err)
	}
	if resp.StatusCode != 200 {
		r.t.Fatalf("%s: status %d", path, resp.StatusCode)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		r.t.Fatalf("%s: %q: %v", path, body, err)
	}
	return m
}

func (r *raw) auth(device string) string {
	m := r.json("/authorize.json", map[string]string{"name": "demo", "pass": "demo-pass", "device": device}, nil)
	s, _ := m["shash"].(string)
	if s == "" {
		r.t.Fatalf("authorize: %v", m)
	}
	return s
}

func code(m map[string]any) int {
	if m["result"] == "OK" {
		return 0
	}
	c, _ := m["code"].(float64)
	return int(c)
}

func TestRouting(t *testing.T) {
	r := newRaw(t, camservertest.Options{})
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/input.raw", 404},
		{http.MethodPost, "/output.raw", 404},
		{http.MethodPost, "/addRecordData.json", 404},
		{http.MethodPost, "/nothing", 404},
		{http.MethodGet, "/heartBit.json", 405},
		{http.MethodPut, "/getMsgs.json", 405},
		{http.MethodDelete, "/nothing", 405},
		{http.MethodPost, "/getServerTime.json", 200},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			b := []byte("{}")
			resp, _, err := r.req(tc.method, tc.path, bytes.NewReader(b), 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestJSONBehaviour(t *testing.T) {
	var ipMu sync.Mutex
	ip := "127.0.0.1"
	r := newRaw(t, camservertest.Options{RemoteIP: func(*http.Request) string {
		ipMu.Lock()
		defer ipMu.Unlock()
		return ip
	}})
	tests := []struct {
		name string
		run  func(t *testing.T) int
		want int
	}{
		{"wrong password", func(t *testing.T) int {
			return code(r.json("/authorize.json", map[string]string{"name": "demo", "pass": "x", "device": "d1"}, nil))
		}, 7},
		{"missing device", func(t *testing.T) int {
			return code(r.json("/authorize.json", map[string]string{"name": "demo", "pass": "demo-pass"}, nil))
		}, 12},
		{"unknown shash", func(t *testing.T) int { return code(r.json("/heartBit.json", map[string]string{"shash": "nope"}, nil)) }, 6},
		{"session from another IP", func(t *testing.T) int {
			s := r.auth("d1")
			ipMu.Lock()
			ip = "127.0.0.2"
			ipMu.Unlock()
			defer func() { ipMu.Lock(); ip = "127.0.0.1"; ipMu.Unlock() }()
			return code(r.json("/heartBit.json", map[string]string{"shash": s}, nil))
		}, 6},
		{"shash in the query string", func(t *testing.T) int {
			s := r.auth("d1")
			return code(r.json("/heartBit.json?shash="+url.QueryEscape(s), map[string]string{}, nil))
		}, 0},
		{"empty record", func(t *testing.T) int {
			s := r.auth("d1")
			_, b, _ := r.req(http.MethodPost, "/addRecord.json?shash="+url.QueryEscape(s), nil, 0, nil)
			var m map[string]any
			json.Unmarshal(b, &m)
			return code(m)
		}, 11},
		{"no devices online", func(t *testing.T) int {
			s := r.auth("d2")
			r.srv.DeleteSessions("d1")
			return code(r.json("/getDevicesOnline.json", map[string]string{"shash": s}, nil))
		}, 0},
		{"bare-string params break getMsgs (DATABASE_FAIL, as the running server)", func(t *testing.T) int {
			a, b := r.auth("sender-a"), r.auth("reader-b")
			r.json("/addMsgs.json", map[string]any{"shash": a, "msg": "x", "target": "reader-b", "params": "bare"}, nil)
			return code(r.json("/getMsgs.json", map[string]any{"shash": b, "stamp": ""}, nil))
		}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.run(t); got != tc.want {
				t.Fatalf("code %d, want %d", got, tc.want)
			}
		})
	}
}

func TestContentLengthMismatchDropsConnection(t *testing.T) {
	r := newRaw(t, camservertest.Options{})
	// An unknown-length body sends no content-length, which counts as 0.
	body := io.MultiReader(strings.NewReader(`{"name":"demo"}`))
	_, _, err := r.req(http.MethodPost, "/authorize.json", body, -1, nil)
	if err == nil {
		t.Fatal("request with a wrong length answered")
	}
	if r.srv.Stats().LengthMismatch != 1 {
		t.Fatalf("mismatches = %d", r.srv.Stats().LengthMismatch)
	}
}

func TestMessagesPagingAndSync(t *testing.T) {
	r := newRaw(t, camservertest.Options{})
	a, b := r.auth("sender-a"), r.auth("reader-b")
	var msgs []map[string]any
	for i := range 40 {
		msgs = append(msgs, map[string]any{"msg": "m", "target": "reader-b", "params": map[string]int{"i": i}})
	}
	msgs = append(msgs, map[string]any{"msg": "other", "target": "someone-else", "params": map[string]int{}})
	if c := code(r.json("/addMsgs.json", map[string]any{"shash": a, "msgs": msgs}, nil)); c != 0 {
		t.Fatalf("addMsgs code %d", c)
	}
	get := func(path string, stamp any) []any {
		m := r.json(path, map[string]any{"shash": b, "stamp": stamp}, nil)
		l, _ := m["msgs"].([]any)
		return l
	}
	p1 := get("/getMsgs.json", map[string]string{"msg": "sync"}) // no bookmark yet: everything
	if len(p1) != 32 {
		t.Fatalf("page 1 = %d, want 32", len(p1))
	}
	last := p1[31].(map[string]any)["stamp"].(string)
	p2 := get("/getMsgsAndSync.json", last)
	if len(p2) != 8 {
		t.Fatalf("page 2 = %d, want 8", len(p2))
	}
	if p2[0].(map[string]any)["params"].(map[string]any)["i"].(float64) != 32 {
		t.Fatalf("page 2 starts at %v", p2[0])
	}
	if got := get("/getMsgs.json", map[string]string{"msg": "sync"}); len(got) != 0 {
		t.Fatalf("after sync: %d messages, want 0", len(got))
	}
	// The sender never sees its own messages.
	m := r.json("/getMsgs.json", map[string]any{"shash": a, "stamp": ""}, nil)
	if l, _ := m["msgs"].([]any); len(l) != 0 {
		t.Fatalf("sender got %d of its own messages", len(l))
	}
}

func TestDeleteRecordsNegativeQuirk(t *testing.T) {
	r := newRaw(t, camservertest.Options{})
	s := r.auth("rec-dev")
	for range 5 {
		r.req(http.MethodPost, "/addRecord.json?shash="+url.QueryEscape(s)+"&meta=JPEG", strings.NewReader("data"), 4, nil)
	}
	if c := code(r.json("/deleteRecords.json", map[string]any{"shash": s, "records": []int{-1}}, nil)); c != 12 {
		t.Fatalf("only negatives: code %d, want 12", c)
	}
	if c := code(r.json("/deleteRecords.json", map[string]any{"shash": s, "records": []int{5, 3, -1}}, nil)); c != 0 {
		t.Fatal(c)
	}
	// 5 and 3 listed; the negative element also sweeps ids <= -1 (none).
	if n := len(r.srv.Records()); n != 3 {
		t.Fatalf("records left %d, want 3", n)
	}
	if c := code(r.json("/deleteRecords.json", map[string]any{"shash": s, "records": []int{2, -7}}, nil)); c != 0 {
		t.Fatal(c)
	}
	if n := len(r.srv.Records()); n != 2 {
		t.Fatalf("records left %d, want 2 (ids 1 and 4)", n)
	}
}

// TestInputRaw: frames arrive exactly; a bad marker, a big-endian header and
// END_STREAM each end the stream with a reset and never a response; a viewer
// on output.raw gets the frames byte for byte.
func TestInputRaw(t *testing.T) {
	be := []byte{0xAA, 0xAA, 0x00, 0x01, 0x86, 0xA0}
	tests := []struct {
		name  string
		tail  []byte
		close bool // END_STREAM after the frames
	}{
		{"bad marker", []byte{0xAB, 0xAA, 0, 0, 0, 0}, false},
		{"big-endian header", be, false},
		{"end stream", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRaw(t, camservertest.Options{ViewerMinGap: time.Millisecond})
			s := r.auth("cam-dev")
			var mu sync.Mutex
			var got [][]byte
			r.srv.SetFrameHook(func(_ string, p []byte) {
				mu.Lock()
				got = append(got, append([]byte(nil), p...))
				mu.Unlock()
			})
			pr, pw := io.Pipe()
			req, _ := http.NewRequest(http.MethodPut, r.srv.URL()+"/input.raw?shash="+url.QueryEscape(s)+"&subproto=RAW_JPEG&delta=400", pr)
			req.ContentLength = -1
			done := make(chan error, 1)
			go func() {
				resp, err := r.rt.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			f1, _ := frame.Encode([]byte("frame-one"))
			f2, _ := frame.Encode(nil)
			pw.Write(f1)
			pw.Write(f2)
			agenttest.Eventually(t, "2 frames", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) >= 2
			})
			// A viewer sees the newest frame with its header.
			vs := r.auth("viewer")
			vreq, _ := http.NewRequest(http.MethodGet, r.srv.URL()+"/output.raw?shash="+url.QueryEscape(vs)+"&device=cam-dev", nil)
			vctx, vcancel := context.WithCancel(context.Background())
			vresp, err := r.rt.RoundTrip(vreq.WithContext(vctx))
			if err != nil {
				t.Fatal(err)
			}
			hdr := make([]byte, frame.HeaderLen)
			if _, err := io.ReadFull(vresp.Body, hdr); err != nil || !bytes.Equal(hdr, f2) {
				t.Fatalf("viewer header % x, %v; want % x", hdr, err, f2)
			}
			vcancel()
			vresp.Body.Close()
			if tc.close {
				pw.Close()
			} else {
				pw.Write(tc.tail)
				go pw.Write([]byte("more")) // the server resets on a later chunk
			}
			if err := <-done; err == nil {
				t.Fatal("input.raw ended without an error")
			}
			pr.CloseWithError(io.ErrClosedPipe)
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 2 || string(got[0]) != "frame-one" || len(got[1]) != 0 {
				t.Fatalf("frames %q", got)
			}
		})
	}
}

func TestUnknownSessionStreamRefused(t *testing.T) {
	r := newRaw(t, camservertest.Options{})
	req, _ := http.NewRequest(http.MethodPut, r.srv.URL()+"/input.raw?shash=nope", strings.NewReader("x"))
	req.ContentLength = -1
	if _, err := r.rt.RoundTrip(req); err == nil {
		t.Fatal("stream with an unknown session was answered")
	}
	if r.srv.Stats().StreamsRefused != 1 {
		t.Fatal("not counted as refused")
	}
}

// TestPerMinuteWindow: the fake counts each session's requests between two
// limit passes, as the real server does (docs/protocols/camera-server.md
// §5.1): PeakPerMinute reports the most one session made in a window, a
// session over the limit is deleted at the next pass and not before, and
// the request hook sees each counted request with its device and the
// server clock's time (getServerTime is not counted).
func TestPerMinuteWindow(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := newRaw(t, camservertest.Options{Now: func() time.Time { return at }})
	var mu sync.Mutex
	seen := map[string]int{}
	r.srv.SetRequestHook(func(path, dev string, when time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if !when.Equal(at) {
			t.Errorf("hook time %v, want the server clock's %v", when, at)
		}
		seen[dev+path]++
	})
	s := r.auth("d1")
	for range 50 { // the default limit: allowed
		r.json("/heartBit.json", map[string]string{"shash": s}, nil)
	}
	r.json("/getServerTime.json", map[string]string{}, nil)
	r.srv.Maintain()
	if st := r.srv.Stats(); st.PeakPerMinute != 50 || st.DeletedSessions != 0 {
		t.Fatalf("after 50 requests: peak %d, deleted %d; want 50, 0", st.PeakPerMinute, st.DeletedSessions)
	}
	for range 51 {
		r.json("/heartBit.json", map[string]string{"shash": s}, nil)
	}
	if c := code(r.json("/heartBit.json", map[string]string{"shash": s}, nil)); c != 0 {
		t.Fatalf("over the limit before the pass: code %d, want OK", c)
	}
	r.srv.Maintain()
	if st := r.srv.Stats(); st.PeakPerMinute != 52 || st.DeletedSessions != 1 {
		t.Fatalf("after 52 requests: peak %d, deleted %d; want 52, 1", st.PeakPerMinute, st.DeletedSessions)
	}
	r.rt.CloseIdleConnections() // the pass also dropped the offender's connections
	if c := code(r.json("/heartBit.json", map[string]string{"shash": s}, nil)); c != 6 {
		t.Fatalf("after the pass: code %d, want NO_SUCH_SESSION", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["d1/heartBit.json"] != 102 || len(seen) != 1 {
		t.Errorf("hook saw %v, want 102 counted heartBits of d1 and nothing else", seen)
	}
}
