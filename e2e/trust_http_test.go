package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/supervisor"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// The trust-boundary cells (issue 13 #1, #10), run by TestTrustFaultHTTP with
// the fault suite's machinery (runCell: recovery every time, no item lost,
// goroutines and heap flat). They are not in faultKinds, so TestFault's
// table is unchanged; `go test -run Fault ./e2e/` runs both.
const (
	// faultRedirect: the service answers a call carrying a secret with a
	// redirect to another host (301/302/303/307/308 in turn). Nothing may
	// reach that host; what was being delivered stays queued.
	faultRedirect = "redirect to another host"
	// faultRetryAfter: the service answers with a Retry-After of ten years
	// (seconds and an HTTP date in turn). The link may wait at most
	// retry.MaxRetryAfter and must recover once the service does.
	faultRetryAfter = "huge Retry-After"
)

// TestTrustFaultHTTP runs the redirect and huge Retry-After cells over every
// link, FAULT_COUNT times each (FAULT_LINKS and FAULT_KINDS select cells as
// for TestFault; FAULT_TABLE=x.md writes this table to x-trust.md).
func TestTrustFaultHTTP(t *testing.T) {
	n := faultCount(t)
	var (
		mu      sync.Mutex
		results []result
	)
	for _, spec := range specsOf(linkSpecs) {
		t.Run(spec.name, func(t *testing.T) {
			for _, kind := range []string{faultRedirect, faultRetryAfter} {
				if !selected(os.Getenv("FAULT_KINDS"), kind) {
					continue
				}
				t.Run(strings.ReplaceAll(kind, " ", "_"), func(t *testing.T) {
					res := runCell(t, spec, kind, n)
					mu.Lock()
					results = append(results, res)
					mu.Unlock()
				})
			}
		})
	}
	table := renderTable(results, n)
	t.Log("\n" + table)
	if path := os.Getenv("FAULT_TABLE"); path != "" { // beside TestFault's: x.md → x-trust.md
		trust := strings.TrimSuffix(path, ".md") + "-trust.md"
		if err := os.WriteFile(trust, []byte(table), 0o644); err != nil {
			t.Errorf("write %s: %v", trust, err)
		}
	}
}

// capClock is the rigs' clock for their supervisor and spool: the real
// clock, recording the longest wait asked of it. While armed (the huge
// Retry-After cell only) a wait over a second is cut to 10 ms, so the cell
// sees what a link asked to wait without waiting it; unarmed it sleeps every
// wait in full, so the other cells keep timing out on a link that waits too
// long. The zero value is ready. Safe for concurrent use.
type capClock struct {
	clock.Real
	mu      sync.Mutex
	armed   bool
	longest time.Duration
}

func (c *capClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.longest = max(c.longest, d)
	if c.armed && d > time.Second {
		d = 10 * time.Millisecond
	}
	c.mu.Unlock()
	return c.Real.Sleep(ctx, d)
}

// arm turns the cutting on or off and forgets the longest wait.
func (c *capClock) arm(on bool) {
	c.mu.Lock()
	c.armed, c.longest = on, 0
	c.mu.Unlock()
}

func (c *capClock) longestWait() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.longest
}

// waitCapped waits until clk was asked for a wait of at least the cap and
// checks it was not more: the peer's ten years, cut to retry.MaxRetryAfter.
func waitCapped(ctx context.Context, clk *capClock) error {
	if err := agenttest.Poll(ctx, "a wait of retry.MaxRetryAfter", func() bool { return clk.longestWait() >= retry.MaxRetryAfter }); err != nil {
		return fmt.Errorf("%w (longest wait asked %v)", err, clk.longestWait())
	}
	if d := clk.longestWait(); d != retry.MaxRetryAfter {
		return fmt.Errorf("the link asked to wait %v, over the cap %v", d, retry.MaxRetryAfter)
	}
	return nil
}

// retryAfterValue alternates the two forms of a ten-year Retry-After.
func retryAfterValue(i int) string {
	if i%2 == 0 {
		return "315360000"
	}
	return time.Now().AddDate(10, 0, 0).UTC().Format(http.TimeFormat)
}

func redirectStatus(i int) int { return []int{301, 302, 303, 307, 308}[i%5] }

// untouched fails when anything reached the other host.
func untouched(sink *httpxtest.Sink) error {
	if n := len(sink.Requests()); n != 0 {
		return fmt.Errorf("%d requests reached the other host (first %s %s)", n, sink.Requests()[0].Method, sink.Requests()[0].URI)
	}
	return nil
}

// trustOnce: Edge Impulse. The sample recorded during the fault is refused
// by a redirect or a 503 with a ten-year Retry-After: it must be kept
// (sample:false, spooled), the key must not reach the other host, and it is
// delivered after the fault with the next one.
func (r *eiRig) trustOnce(ctx context.Context, kind string, i int) error {
	pre, post := fmt.Sprintf("pre-%03d", i), fmt.Sprintf("post-%03d", i)
	srv := r.server()
	var fail string
	var err error
	switch kind {
	case faultRedirect:
		sink := httpxtest.NewSink(false)
		defer sink.Close()
		srv.RedirectUploads(redirectStatus(i), sink.URL())
		fail, err = r.ask(ctx, pre, "sampleFinished")
		srv.RedirectUploads(0, "")
		if err == nil {
			err = untouched(sink)
		}
	case faultRetryAfter:
		r.clk.arm(true)
		defer r.clk.arm(false)
		srv.SetUploadRetryAfter(retryAfterValue(i))
		srv.FailUploads(503)
		fail, err = r.ask(ctx, pre, "sampleFinished")
		if err == nil {
			err = waitCapped(ctx, r.clk)
		}
		srv.FailUploads(0)
		srv.SetUploadRetryAfter("")
	default:
		return fmt.Errorf("fault %q not implemented for edgeimpulse", kind)
	}
	switch {
	case err != nil:
		return err
	case !r.tr.isProduced(pre):
		return fmt.Errorf("sample %s was not spooled: %s", pre, fail)
	case fail == "":
		return fmt.Errorf("sample %s reported finished through the fault", pre)
	}
	return r.healthy(ctx, post)
}

// trustOnce: Frame.io. The asset dropped before the fault meets a redirect
// of its create or a part PUT, or a ten-year Retry-After on its create; it
// stays spooled, nothing reaches the other host, and it arrives intact.
func (r *fioRig) trustOnce(ctx context.Context, kind string, i int, pre, post string) error {
	var err error
	switch kind {
	case faultRedirect:
		sink := httpxtest.NewSink(false)
		defer sink.Close()
		red0 := r.fake.Redirected()
		r.fake.Redirect([]string{"/v2/devices/assets", "/s3/"}[i%2], redirectStatus(i), sink.URL())
		err = agenttest.Poll(ctx, "a redirected call", func() bool { return r.fake.Redirected() > red0 })
		r.fake.Redirect("", 0, "")
		if err == nil {
			err = untouched(sink)
		}
	case faultRetryAfter:
		r.clk.arm(true)
		defer r.clk.arm(false)
		r.fake.FailCreates(frameiotest.Fault{Status: []int{429, 503}[i%2], Message: "busy",
			Header: http.Header{"Retry-After": {retryAfterValue(i)}}})
		err = waitCapped(ctx, r.clk)
	default:
		return fmt.Errorf("fault %q not implemented for frameio", kind)
	}
	if err != nil {
		return err
	}
	if err := r.delivered(ctx, pre); err != nil {
		return err
	}
	return r.healthy(ctx, post)
}

// trustOnce: camera server. The session is deleted so the link must
// authorize again, and authorize.json answers a redirect or 503 with a
// ten-year Retry-After (the link has no use for Retry-After: it keeps its
// own backoff). The password reaches no other host and the link is back.
func (r *csRig) trustOnce(ctx context.Context, kind string, i int, st supervisor.Status, ss camservertest.Stats, pre, post string) error {
	var err error
	switch kind {
	case faultRedirect:
		sink := httpxtest.NewSink(false)
		defer sink.Close()
		red0 := r.srv.Redirected()
		r.srv.Redirect("/authorize.json", redirectStatus(i), sink.URL())
		r.srv.DeleteSessions(csDevice)
		r.srv.Maintain()
		err = agenttest.Poll(ctx, "a redirected authorize", func() bool { return r.srv.Redirected() > red0 })
		r.srv.Redirect("", 0, "")
		if err == nil {
			err = untouched(sink)
		}
	case faultRetryAfter:
		r.clk.arm(true)
		defer r.clk.arm(false)
		calls0 := r.srv.Calls("/authorize.json")
		r.srv.SetFailRetryAfter(retryAfterValue(i))
		r.srv.FailNext("/authorize.json", 503, 2)
		r.srv.DeleteSessions(csDevice)
		r.srv.Maintain()
		err = agenttest.Poll(ctx, "two refused authorizations", func() bool { return r.srv.Calls("/authorize.json") >= calls0+2 })
		r.srv.SetFailRetryAfter("")
		if d := r.clk.longestWait(); err == nil && d > retry.MaxRetryAfter {
			err = fmt.Errorf("the link asked to wait %v, over the cap %v", d, retry.MaxRetryAfter)
		}
	default:
		return fmt.Errorf("fault %q not implemented for camserver", kind)
	}
	if err != nil {
		return err
	}
	if err := agenttest.Poll(ctx, "re-authorization", func() bool { return r.srv.Stats().Authorizations > ss.Authorizations }); err != nil {
		return err
	}
	if err := agenttest.Poll(ctx, "the stream reopened", func() bool { return r.srv.Stats().StreamsOpened > ss.StreamsOpened }); err != nil {
		return err
	}
	if err := r.delivered(ctx, pre); err != nil {
		return err
	}
	return r.healthy(ctx, post)
}

// trustOnce: RTM. Every token expires and the session drops, so the link
// must fetch a new token from token_url, which answers a redirect (the
// device key must not follow it) or 503 with a ten-year Retry-After.
func (r *rtmRig) trustOnce(ctx context.Context, kind string, i int, st supervisor.Status, active0 int) error {
	f := r.server()
	var err error
	switch kind {
	case faultRedirect:
		sink := httpxtest.NewSink(false)
		defer sink.Close()
		red0 := f.Redirected()
		f.Redirect(rtmtest.TokenPath, redirectStatus(i), sink.URL())
		f.ExpireTokens()
		f.DropSockets()
		err = agenttest.Poll(ctx, "a redirected token fetch", func() bool { return f.Redirected() > red0 })
		f.Redirect("", 0, "")
		if err == nil {
			err = untouched(sink)
		}
	case faultRetryAfter:
		r.clk.arm(true)
		defer r.clk.arm(false)
		f.FailTokens(503, retryAfterValue(i))
		f.ExpireTokens()
		f.DropSockets()
		err = waitCapped(ctx, r.clk)
		f.FailTokens(0, "")
	default:
		return fmt.Errorf("fault %q not implemented for rtm", kind)
	}
	if err != nil {
		return err
	}
	return r.healthy(ctx, active0, st.Sessions)
}
