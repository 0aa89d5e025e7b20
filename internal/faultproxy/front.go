package faultproxy

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Front is a plain-HTTP reverse proxy in front of a fake service that
// answers chosen requests itself, the way a proxy, a load balancer or a
// service being redeployed does for minutes: a bare 404, 405 or 408, a 400
// with an HTML page, a 401 from the wrong backend. Every other request
// (WebSocket upgrades included) goes to the target unchanged. Where Proxy
// breaks the network, Front breaks single HTTP answers.
//
// Concurrency: every method is safe for concurrent use. Close stops the
// server and waits for its handlers.
type Front struct {
	srv *httptest.Server

	mu     sync.Mutex
	rp     *httputil.ReverseProxy // to the current target
	rules  []frontRule
	failed int
}

type frontRule struct {
	prefix string
	status int
	body   string
	left   int
}

// NewFront starts a front on 127.0.0.1 for target, a base URL such as
// http://127.0.0.1:4810.
func NewFront(target string) (*Front, error) {
	f := &Front{}
	if err := f.SetTarget(target); err != nil {
		return nil, err
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, body, ok := f.take(r.URL.Path); ok {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			ct := "text/plain; charset=utf-8"
			switch {
			case strings.HasPrefix(body, "{"):
				ct = "application/json"
			case strings.HasPrefix(body, "<"):
				ct = "text/html"
			}
			w.Header().Set("Content-Type", ct)
			w.WriteHeader(st)
			_, _ = io.WriteString(w, body)
			return
		}
		f.mu.Lock()
		rp := f.rp
		f.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	return f, nil
}

// SetTarget sends later requests to target (a restarted fake on a new port).
func (f *Front) SetTarget(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a target going away is the point of the tests
	f.mu.Lock()
	f.rp = rp
	f.mu.Unlock()
	return nil
}

// Addr is the front's host:port.
func (f *Front) Addr() string { return f.srv.Listener.Addr().String() }

// URL is the front's base URL (http://127.0.0.1:port).
func (f *Front) URL() string { return f.srv.URL }

// FailNext answers the next n requests whose path starts with prefix with
// status and body (JSON when it starts with "{", HTML with "<", else text);
// n <= 0 removes the rule. Rules are checked in the order they were set.
func (f *Front) FailNext(prefix string, status, n int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r.prefix == prefix {
			f.rules = append(f.rules[:i], f.rules[i+1:]...)
			break
		}
	}
	if n > 0 {
		f.rules = append(f.rules, frontRule{prefix: prefix, status: status, body: body, left: n})
	}
}

// Failed counts the requests the front answered itself.
func (f *Front) Failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// Pending reports how many answers of the rules are still to be given.
func (f *Front) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.rules {
		n += r.left
	}
	return n
}

func (f *Front) take(path string) (int, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.rules {
		r := &f.rules[i]
		if r.left > 0 && strings.HasPrefix(path, r.prefix) {
			r.left--
			f.failed++
			return r.status, r.body, true
		}
	}
	return 0, "", false
}

// Close stops the front (connections to it are closed) and waits for its
// handlers.
func (f *Front) Close() {
	f.srv.CloseClientConnections()
	f.srv.Close()
}
