// Package httpxtest has the hostile HTTP peers of the links' trust tests: a
// redirecting front a fake puts before its handler (Redirect), and a server
// that records whatever reaches it (Sink), standing for "another host" a
// redirect or a server-supplied URL points at. Tests check that no secret
// ever arrives there.
//
// Concurrency: all methods are safe for concurrent use.
package httpxtest

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/edge-agent/edge-agent/internal/selfsigned"
)

// Rule is what Redirect answers: requests whose path starts with Prefix get
// Status with Location Target + Path, or Target + the request's path and
// query when Path is empty. A zero Rule redirects nothing.
type Rule struct {
	Prefix string
	Status int    // 301, 302, 303, 307 or 308
	Target string // scheme://host:port of the other server (no trailing slash)
	Path   string // optional fixed path (and query) on Target
}

// Redirect is a switchable redirecting front. The zero value redirects
// nothing.
type Redirect struct {
	mu    sync.Mutex
	rule  Rule
	count int
}

// Set installs r (a zero Rule turns redirecting off).
func (d *Redirect) Set(r Rule) {
	d.mu.Lock()
	d.rule = r
	d.mu.Unlock()
}

// Count is how many requests were answered with a redirect.
func (d *Redirect) Count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count
}

// Wrap returns next behind the redirecting front. The request body is
// drained first, as a real front would read it before answering.
func (d *Redirect) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		rule := d.rule
		hit := rule.Status != 0 && strings.HasPrefix(r.URL.Path, rule.Prefix)
		if hit {
			d.count++
		}
		d.mu.Unlock()
		if !hit {
			next.ServeHTTP(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		loc := rule.Target + rule.Path
		if rule.Path == "" {
			loc = rule.Target + r.URL.RequestURI()
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(rule.Status)
	})
}

// Request is one request the Sink received.
type Request struct {
	Method string
	Host   string
	URI    string
	Header http.Header
	Body   []byte
}

// Sink is a server on 127.0.0.1 that records every request and answers
// 200 with a JSON body that would satisfy a careless client ({"success":true,
// "files":[]}, as if the upload had been taken).
type Sink struct {
	srv  *httptest.Server
	cert []byte // PEM of the TLS sink's certificate

	mu   sync.Mutex
	reqs []Request
}

// NewSink starts a sink over plain HTTP, or HTTPS when useTLS is set, with
// a certificate for 127.0.0.1, ::1 and localhost (CertPEM gives it, for a
// ca_file). Close it.
func NewSink(useTLS bool) *Sink {
	s := &Sink{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		s.mu.Lock()
		s.reqs = append(s.reqs, Request{Method: r.Method, Host: r.Host, URI: r.URL.RequestURI(), Header: r.Header.Clone(), Body: b})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"success":true,"files":[]}`)
	})
	if !useTLS {
		s.srv = httptest.NewServer(h)
		return s
	}
	cert, pemBytes, err := selfsigned.Localhost("httpxtest")
	if err != nil {
		panic(err) // crypto/rand failing: no test can run
	}
	s.srv = httptest.NewUnstartedServer(h)
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	s.cert = pemBytes
	return s
}

// URL is the sink's base URL (http://127.0.0.1:port, or https://).
func (s *Sink) URL() string { return s.srv.URL }

// CertPEM is the TLS sink's certificate (nil for a plain one).
func (s *Sink) CertPEM() []byte { return s.cert }

// Requests returns what reached the sink, oldest first.
func (s *Sink) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Saw reports whether secret appeared anywhere in a request that reached the
// sink: a header value, the request URI or the body.
func (s *Sink) Saw(secret string) bool {
	if secret == "" {
		return false
	}
	for _, r := range s.Requests() {
		if strings.Contains(r.URI, secret) || bytes.Contains(r.Body, []byte(secret)) {
			return true
		}
		for _, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, secret) {
					return true
				}
			}
		}
	}
	return false
}

// Close stops the sink.
func (s *Sink) Close() { s.srv.Close() }
