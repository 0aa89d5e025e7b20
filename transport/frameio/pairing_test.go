package frameio_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
)

// gateClock is a fake clock whose Sleep waits for the test: each Sleep is
// announced on slept, and returns when the test sends on release (the clock
// then advances by the sleep) or when its context ends.
type gateClock struct {
	mu      sync.Mutex
	now     time.Time
	slept   chan time.Duration
	release chan struct{}
}

func newGateClock() *gateClock {
	return &gateClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), slept: make(chan time.Duration, 8), release: make(chan struct{})}
}

func (c *gateClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *gateClock) Sleep(ctx context.Context, d time.Duration) error {
	c.slept <- d
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.release:
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

var sixDigits = regexp.MustCompile(`^[0-9]{6}$`)

func pairingWith(t *testing.T, fake *frameiotest.Server, clk *gateClock) (*frameio.Pairing, string) {
	t.Helper()
	cfg := frameio.Config{APIURL: fake.URL(), SocketURL: fake.SocketURL(), ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret()}
	path := filepath.Join(t.TempDir(), "tokens.json")
	p := frameio.NewPairing(cfg, frameio.PairOptions{TokenPath: path, DeviceName: "pi-lab-01", Version: "1.4.0", Clock: clk})
	t.Cleanup(p.Cancel)
	return p, path
}

// TestPairingSteps follows a pairing through its steps as the console shows
// them: the code (six digits), the verification URL and the countdown while
// Frame.io waits for the user; the result (project, who authorized) once
// approved; a second Start refused meanwhile; then Unpair.
func TestPairingSteps(t *testing.T) {
	fake := newFake(t, frameiotest.Options{CodeTTL: 120, Interval: 5})
	fake.SetPairScript("authorization_pending")
	clk := newGateClock()
	p, path := pairingWith(t, fake, clk)
	if st := p.Status(); st.State != frameio.PairIdle || st.Paired {
		t.Fatalf("before Start: %+v", st)
	}
	_, changed := p.Watch()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-changed
	<-clk.slept // the code is shown; the first poll waits
	st := p.Status()
	if st.State != frameio.PairWaiting || !sixDigits.MatchString(st.Code) || st.Codes != 1 || st.ExpiresIn != 120 ||
		st.VerificationURLComplete != fake.URL()+"/pair?code="+st.Code || st.FrameioName != "Frameio-"+fake.ClientID() || st.DeviceName != "pi-lab-01" {
		t.Errorf("waiting: %+v", st)
	}
	if err := p.Start(context.Background()); !errors.Is(err, frameio.ErrPairingRunning) {
		t.Errorf("a second Start = %v, want ErrPairingRunning", err)
	}
	if err := p.Unpair(context.Background()); !errors.Is(err, frameio.ErrPairingRunning) {
		t.Errorf("Unpair while pairing = %v, want ErrPairingRunning", err)
	}
	clk.release <- struct{}{} // poll: authorization_pending
	<-clk.slept
	if st := p.Status(); st.State != frameio.PairWaiting || st.Polls != 1 || st.ExpiresIn != 115 {
		t.Errorf("after one pending poll: %+v", st)
	}
	clk.release <- struct{}{} // poll: approved
	st, err := p.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != frameio.PairPaired || st.Project != "Fake Project" || st.AuthorizedBy != "Fake User" || !st.Paired || st.Ended.IsZero() {
		t.Errorf("paired: %+v", st)
	}
	if id, err := p.Result(); err != nil || id == nil || id.ID != fake.DeviceID() {
		t.Errorf("result %+v, %v", id, err)
	}
	if err := p.Unpair(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); st.State != frameio.PairIdle || st.Paired {
		t.Errorf("after Unpair: %+v", st)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) || fake.Stats().Revokes != 1 {
		t.Errorf("after Unpair the tokens are %v, revokes %d", err, fake.Stats().Revokes)
	}
}

// TestPairingCancelWhileWaiting: Cancel while the code is shown ends the
// run at once, writes no tokens, and a new Start issues a new code.
func TestPairingCancelWhileWaiting(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	fake.SetPairScript("authorization_pending", "authorization_pending")
	clk := newGateClock()
	p, path := pairingWith(t, fake, clk)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-clk.slept
	p.Cancel()
	st := p.Status()
	if st.State != frameio.PairCancelled || st.Paired || st.Code == "" {
		t.Errorf("cancelled: %+v", st)
	}
	if _, err := p.Result(); !errors.Is(err, context.Canceled) {
		t.Errorf("result error %v, want cancelled", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tokens written by a cancelled pairing: %v", err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start after a cancel: %v", err)
	}
	<-clk.slept
	if st := p.Status(); st.State != frameio.PairWaiting || st.Codes != 1 || fake.Stats().Codes != 2 {
		t.Errorf("restarted: %+v, codes issued %d", st, fake.Stats().Codes)
	}
}

// TestPairingCancelWhileRequesting: Cancel while Frame.io has not answered
// the code request yet ends the run too.
func TestPairingCancelWhileRequesting(t *testing.T) {
	asked := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseMultipartForm(1 << 16) // read the body, so a client gone away ends r's context
		asked <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	cfg := frameio.Config{APIURL: srv.URL, ClientID: "id", ClientSecret: "secret"}
	p := frameio.NewPairing(cfg, frameio.PairOptions{TokenPath: filepath.Join(t.TempDir(), "t.json"), Clock: newGateClock()})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-asked
	if st := p.Status(); st.State != frameio.PairRequesting {
		t.Errorf("while asking: %+v", st)
	}
	p.Cancel()
	if st := p.Status(); st.State != frameio.PairCancelled || st.Error == "" {
		t.Errorf("cancelled: %+v", st)
	}
}

// TestPairingFailureShown: a refused client is a failed run whose error the
// console can show, without the secret.
func TestPairingFailureShown(t *testing.T) {
	fake := newFake(t, frameiotest.Options{})
	cfg := frameio.Config{APIURL: fake.URL(), ClientID: fake.ClientID(), ClientSecret: "wrong-secret"}
	p := frameio.NewPairing(cfg, frameio.PairOptions{TokenPath: filepath.Join(t.TempDir(), "t.json"), Clock: newGateClock()})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := p.Wait(context.Background())
	if st.State != frameio.PairFailed || !regexp.MustCompile(`client_id/client_secret`).MatchString(st.Error) {
		t.Errorf("failed: %+v", st)
	}
}
