package camserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
)

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode camserver.Code
		wantBad  bool
		check    func(*camserver.Response) bool
	}{
		{"ok shash", `{"shash":"a+b/c=","result":"OK"}`, 0, false, func(r *camserver.Response) bool { return r.Shash == "a+b/c=" }},
		{"no session", `{"result":"BAD","code":6}`, camserver.CodeNoSuchSession, false, nil},
		{"unknown code", `{"result":"BAD","code":99}`, 99, false, nil},
		{"bad without code", `{"result":"BAD"}`, 0, true, nil},
		{"not json", `<html>`, 0, true, nil},
		{"array", `[]`, 0, true, nil},
		{"other result", `{"result":"MAYBE"}`, 0, true, nil},
		{"msgs", `{"msgs":[{"msg":"snapshot","device":"x","params":{"id":"1"},"stamp":"2026-01-01 00:00:00.0001"}],"result":"OK"}`, 0, false,
			func(r *camserver.Response) bool { return len(r.Msgs) == 1 && string(r.Msgs[0].Params) == `{"id":"1"}` }},
		{"config", `{"config":[{"kind":4,"miv":20,"mav":200,"dv":50,"fv":500}],"result":"OK"}`, 0, false,
			func(r *camserver.Response) bool { return r.Config[0].Clamped() == 200 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := camserver.DecodeResponse("op.json", []byte(tc.body), nil)
			var ae *camserver.APIError
			switch {
			case tc.wantBad:
				if !errors.Is(err, camserver.ErrBadResponse) {
					t.Fatalf("err = %v, want ErrBadResponse", err)
				}
			case tc.wantCode != 0:
				if !errors.As(err, &ae) || ae.Code != tc.wantCode || !strings.Contains(err.Error(), "op.json") {
					t.Fatalf("err = %v, want code %d", err, tc.wantCode)
				}
			default:
				if err != nil || (tc.check != nil && !tc.check(r)) {
					t.Fatalf("r = %+v, err = %v", r, err)
				}
			}
		})
	}
	if !errors.Is(&camserver.APIError{Op: "x", Code: 6}, camserver.ErrNoSuchSession) {
		t.Fatal("APIError does not match its sentinel")
	}
	if camserver.CodeNoSuchSession.String() != "NO_SUCH_SESSION" || camserver.Code(42).String() != "CODE_42" {
		t.Fatal("code names")
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{`{"result":"OK"}`, `{"result":"BAD","code":6}`, `{"msgs":[{"params":[1]}],"result":"OK"}`,
		`{"config":[{"kind":"x"}],"result":"OK"}`, `{"result":"BAD","code":1e99}`, `null`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := camserver.DecodeResponse("fuzz.json", b, nil)
		if err == nil && (r == nil || r.Result != "OK") {
			t.Fatalf("nil error without an OK response: %+v", r)
		}
		var ae *camserver.APIError
		if err != nil && !errors.Is(err, camserver.ErrBadResponse) && !errors.As(err, &ae) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	tests := []struct {
		name    string
		mut     func(*camserver.Config)
		problem string // a field path expected among the problems; "" = valid
	}{
		{"valid", func(*camserver.Config) {}, ""},
		{"missing url", func(c *camserver.Config) { c.URL = "" }, "url"},
		{"ftp url", func(c *camserver.Config) { c.URL = "ftp://x" }, "url"},
		{"numeric device", func(c *camserver.Config) { c.Device = "1234" }, "device"},
		{"boolean device", func(c *camserver.Config) { c.Device = "true" }, "device"},
		{"hex subproto", func(c *camserver.Config) { c.Stream.Subproto = "0x1F" }, "stream.subproto"},
		{"dollar subproto", func(c *camserver.Config) { c.Stream.Subproto = "$1F" }, "stream.subproto"},
		{"delta too small", func(c *camserver.Config) { c.Stream.Delta = conf.Duration(100e6) }, "stream.delta"},
		{"bad start", func(c *camserver.Config) { c.Stream.Start = "never" }, "stream.start"},
		{"no password", func(c *camserver.Config) { c.PasswordFile = "" }, "password_file"},
		{"poll_fast over poll", func(c *camserver.Config) { c.PollFast = conf.Duration(20 * time.Second) }, "poll_fast"},
		{"poll_fast under 1s", func(c *camserver.Config) { c.PollFast = conf.Duration(500 * time.Millisecond) }, "poll_fast"},
		{"poll_fast_for over 1h", func(c *camserver.Config) { c.PollFastFor = conf.Duration(2 * time.Hour) }, "poll_fast_for"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := camserver.Config{URL: "https://localhost:8080", User: "u", PasswordFile: pw, Stream: camserver.Stream{Sensor: "cam"}}
			c.SetDefaults()
			tc.mut(&c)
			v := conf.NewValidator()
			c.Validate(v)
			var paths []string
			for _, p := range v.Problems() {
				paths = append(paths, p.Path)
			}
			if tc.problem == "" {
				if len(paths) != 0 {
					t.Fatalf("problems: %v", v.Problems())
				}
				if c.Password != "secret" {
					t.Fatal("password not resolved from file")
				}
				return
			}
			found := false
			for _, p := range paths {
				found = found || p == tc.problem
			}
			if !found {
				t.Fatalf("problems %v, want one at %s", paths, tc.problem)
			}
		})
	}
}

// TestClientSessionRenewal: NO_SUCH_SESSION makes the client authorize again
// and replay the request once; after 90 % of the session's request budget it
// starts a new session before the server would delete it.
func TestClientSessionRenewal(t *testing.T) {
	srv := newServer(t, camservertest.Options{})
	op := operator(t, srv, "renewal-dev")
	ctx := context.Background()
	if srv.DeleteSessions("renewal-dev") != 1 {
		t.Fatal("no session to delete")
	}
	if err := op.HeartBit(ctx); err != nil {
		t.Fatalf("heartBit after deletion: %v", err)
	}
	if got := srv.Stats().Authorizations; got != 2 {
		t.Fatalf("authorizations = %d, want 2", got)
	}
	// Total budget: the server's minimum of 200 → renew at 180.
	srv.SetLimit(3, 200, false)
	if err := op.Authorize(ctx); err != nil {
		t.Fatal(err)
	}
	before := srv.Stats().Authorizations
	for range 200 {
		if err := op.HeartBit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Stats().Authorizations - before; got != 1 {
		t.Fatalf("renewals in 200 requests = %d, want 1", got)
	}
	srv.Maintain()
	if err := op.HeartBit(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.Stats().DeletedSessions != 1 { // only the one deleted by hand
		t.Fatalf("server deleted %d sessions: the client went over its budget", srv.Stats().DeletedSessions)
	}
}

func TestBadCredentials(t *testing.T) {
	srv := newServer(t, camservertest.Options{})
	cfg := camserver.Config{URL: srv.URL(), User: "demo", Password: "wrong", Device: "pi-x"}
	cfg.SetDefaults()
	l, err := camserver.New(cfg, agenttest.Deps(t, "cs", nil, nil), camserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Dial(context.Background())
	if d, ok := retry.After(err); !ok || d < 5*60e9 || !errors.Is(err, camserver.ErrNoSuchUser) {
		t.Fatalf("err = %v, want NO_SUCH_USER with a long retry-after", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatal("password in the error text")
	}
}

func TestTLSVerification(t *testing.T) {
	srv := newServer(t, camservertest.Options{TLS: true})
	tests := []struct {
		name     string
		ca       bool
		insecure bool
		ok       bool
	}{{"untrusted", false, false, false}, {"ca_file", true, false, true}, {"insecure", false, true, true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := camserver.Config{URL: srv.URL(), User: "demo", Password: "demo-pass", Device: "pi-tls", InsecureSkipVerify: tc.insecure}
			if tc.ca {
				cfg.CAFile = filepath.Join(t.TempDir(), "ca.pem")
				if err := os.WriteFile(cfg.CAFile, srv.CAPEM(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg.SetDefaults()
			l, err := camserver.New(cfg, agenttest.Deps(t, "cs", nil, nil), camserver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := l.Dial(context.Background())
			if (err == nil) != tc.ok {
				t.Fatalf("dial err = %v, want ok=%v", err, tc.ok)
			}
			if s != nil {
				s.Close()
			}
		})
	}
}

func TestAPIQuirksFromClient(t *testing.T) {
	srv := newServer(t, camservertest.Options{})
	op := operator(t, srv, "quirk-dev")
	ctx := context.Background()
	if err := op.AddRecord(ctx, "1234", []byte("x")); err == nil {
		t.Fatal("numeric meta accepted")
	}
	if err := op.DeleteRecords(ctx, -1, 3); err == nil {
		t.Fatal("negative record id accepted")
	}
	if err := op.AddMsgs(ctx, camserver.Message{Msg: "x", Params: json.RawMessage(`"bare"`)}); err == nil {
		t.Fatal("non-object params accepted")
	}
	if _, err := op.GetRecordMeta(ctx, 77); !errors.Is(err, camserver.ErrNoSuchRecord) {
		t.Fatalf("unknown rid: %v", err)
	}
}

func TestNewRejectsMismatchedSubproto(t *testing.T) {
	h := sensorHub(t, nil)
	tests := []struct {
		name, sensor, subproto string
		ok                     bool
	}{
		{"jpeg from camera", "cam", camserver.SubprotoRawJPEG, true},
		{"deflate json from accel", "accel", camserver.SubprotoDeflateJSON, true},
		{"jpeg from accel", "accel", camserver.SubprotoRawJPEG, false},
		{"numeric subproto", "cam", "1e5", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := camserver.Config{URL: "http://127.0.0.1:9", User: "demo", Password: "demo-pass", Device: "pi-x",
				Stream: camserver.Stream{Sensor: tc.sensor, Subproto: tc.subproto}}
			cfg.SetDefaults()
			_, err := camserver.New(cfg, agenttest.Deps(t, "cs", h, nil), camserver.Options{})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestClientBudgetOnInjectedClock: the request budget waits on the clock the
// client is given, not on the wall clock. At the server's default of 50
// requests a minute the client allows itself 60 %: a burst of 3, then one
// request every 2 s, each wait asked of the clock.
func TestClientBudgetOnInjectedClock(t *testing.T) {
	srv, err := camservertest.New("127.0.0.1:0", camservertest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	rt := camserver.NewPinnedTransport(srv.Addr(), nil)
	t.Cleanup(rt.CloseIdleConnections)
	u, _ := url.Parse(srv.URL())
	clk := clock.NewFake(time.Unix(1e9, 0))
	c := camserver.NewClient(u, rt, camserver.ClientOptions{User: camservertest.DemoUser,
		Password: camservertest.DemoPassword, Device: "budget-dev", Clock: clk})
	if err := c.Authorize(t.Context()); err != nil { // the limits read start a full bucket
		t.Fatal(err)
	}
	for range 5 {
		if err := c.HeartBit(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var waits []time.Duration
	for _, d := range clk.Sleeps() {
		if d > 0 {
			waits = append(waits, d)
		}
	}
	if want := []time.Duration{2 * time.Second, 2 * time.Second}; !slices.Equal(waits, want) {
		t.Fatalf("budget waits on the clock = %v, want %v (a burst of 3, then 1 per 2 s)", waits, want)
	}
	if !c.LastOK().Equal(clk.Now()) {
		t.Errorf("LastOK = %v, want the injected clock's %v", c.LastOK(), clk.Now())
	}
}
