package edgeimpulse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/httpx"
	"github.com/edge-agent/edge-agent/internal/redact"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// Deployment is one built deployment of a Studio project for one target.
type Deployment struct {
	Project int
	Version int
	Target  string // the deployment type, e.g. runner-linux-aarch64
	Variant string // int8 | float32 | "" (the project's default)
}

// ErrNoDeployment says the project has no deployment built for the target:
// someone has to build one in Studio (Deployment page, the Linux target of
// the board's architecture) or with the reference runner.
var ErrNoDeployment = errors.New("no deployment built for this target")

// MaxModelBytes bounds one downloaded model; the largest .eim files
// (TensorRT, big object detectors) are tens of MiB.
const MaxModelBytes = 1 << 30

// Studio is the part of Studio's REST API the on-device runner needs to
// fetch the project's model, as edge-impulse-linux-runner fetches it
// (docs/protocols/eim.md §8): the project of the API key, the newest
// deployment for a target, and its download. It uses the link's API key
// (api_key_file re-read before every call, as the link does before every
// session) and the link's TLS settings and redirect policy.
//
// Concurrency: safe for concurrent use.
type Studio struct {
	base *url.URL
	key  *apiKey
	http *http.Client
	log  *slog.Logger

	mu      sync.Mutex
	project int // the API key's project, once known
}

// StudioOptions are a Studio client's dependencies; zero values are valid.
type StudioOptions struct {
	Logger  *slog.Logger
	Secrets *redact.Secrets
	// Name is the link's name, for the secret slot of its key.
	Name string
}

// NewStudio returns a Studio client for the link configured by cfg (a
// validated block: api_key holds the key).
func NewStudio(cfg Config, o StudioOptions) (*Studio, error) {
	cfg.SetDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Secrets == nil {
		o.Secrets = redact.New()
	}
	if cfg.APIKey == "" {
		return nil, errors.New("edgeimpulse studio: no api key (Validate resolves api_key_file)")
	}
	base, err := url.Parse(strings.TrimRight(cfg.StudioURL, "/"))
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("edgeimpulse studio: studio_url %q is not an absolute URL", cfg.StudioURL)
	}
	tc, err := httpx.TLSConfig(httpx.TLS{CAFile: cfg.CAFile, InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		return nil, fmt.Errorf("edgeimpulse studio: %w", err)
	}
	tr := httpx.NewTransport(tc)
	tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout = handshakeTimeout, 2*time.Minute
	key := &apiKey{file: cfg.APIKeyFile, cur: cfg.APIKey, secrets: o.Secrets, slot: "edgeimpulse/" + o.Name + "/studio_api_key"}
	o.Secrets.Set(key.slot, cfg.APIKey)
	return &Studio{base: base, key: key, http: httpx.NewClient(tr), log: o.Logger}, nil
}

// Project returns the project the API key belongs to: the only entry of
// GET /v1/api/projects for a project key, as the CLI takes it.
func (s *Studio) Project(ctx context.Context) (int, error) {
	s.mu.Lock()
	id := s.project
	s.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	var resp struct {
		Success  bool   `json:"success"`
		Error    string `json:"error"`
		Projects []struct {
			ID int `json:"id"`
		} `json:"projects"`
	}
	if err := s.getJSON(ctx, "/v1/api/projects", nil, &resp); err != nil {
		return 0, fmt.Errorf("edgeimpulse studio: projects: %w", err)
	}
	if len(resp.Projects) == 0 || resp.Projects[0].ID <= 0 {
		return 0, fmt.Errorf("edgeimpulse studio: projects: the API key names no project")
	}
	s.mu.Lock()
	s.project = resp.Projects[0].ID
	s.mu.Unlock()
	return resp.Projects[0].ID, nil
}

// Deployment returns the newest deployment of the key's project for
// target (GET /v1/api/{project}/deployment?type=…), or ErrNoDeployment.
func (s *Studio) Deployment(ctx context.Context, target, variant string) (Deployment, error) {
	project, err := s.Project(ctx)
	if err != nil {
		return Deployment{}, err
	}
	var resp struct {
		Success       bool   `json:"success"`
		Error         string `json:"error"`
		HasDeployment bool   `json:"hasDeployment"`
		Version       *int   `json:"version"`
	}
	if err := s.getJSON(ctx, fmt.Sprintf("/v1/api/%d/deployment", project), query(target, variant), &resp); err != nil {
		return Deployment{}, fmt.Errorf("edgeimpulse studio: deployment: %w", err)
	}
	if !resp.HasDeployment || resp.Version == nil {
		return Deployment{}, fmt.Errorf("edgeimpulse studio: project %d, %s: %w", project, target, ErrNoDeployment)
	}
	return Deployment{Project: project, Version: *resp.Version, Target: target, Variant: variant}, nil
}

// Download writes the deployment's model to w (GET
// /v1/api/{project}/deployment/download?type=…, the executable itself)
// and returns its size. A body over MaxModelBytes, or shorter than its
// Content-Length, is an error.
func (s *Studio) Download(ctx context.Context, d Deployment, w io.Writer) (int64, error) {
	op := fmt.Sprintf("edgeimpulse studio: download %s v%d", d.Target, d.Version)
	resp, err := s.get(ctx, fmt.Sprintf("/v1/api/%d/deployment/download", d.Project), query(d.Target, d.Variant))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, io.LimitReader(resp.Body, MaxModelBytes+1))
	switch {
	case err != nil:
		return n, fmt.Errorf("%s: %w", op, err)
	case n > MaxModelBytes:
		return n, retry.Permanent(fmt.Errorf("%s: larger than %d MiB", op, MaxModelBytes>>20))
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return n, fmt.Errorf("%s: %d of %d bytes", op, n, resp.ContentLength)
	}
	return n, nil
}

func query(target, variant string) url.Values {
	q := url.Values{"type": {target}}
	if variant != "" {
		q.Set("modelType", variant)
	}
	return q
}

func (s *Studio) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := s.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	// Studio answers 200 with success:false for some refusals.
	var env struct {
		Success *bool  `json:"success"`
		Error   string `json:"error"`
	}
	b, _ := json.Marshal(v)
	if json.Unmarshal(b, &env) == nil && env.Success != nil && !*env.Success {
		return fmt.Errorf("studio refused: %s", s.key.secrets.Peer(env.Error, 300))
	}
	return nil
}

// get sends one authenticated GET and returns a 2xx response; other
// statuses are errors (401/403 permanent until the key changes, 429/503
// with their Retry-After).
func (s *Studio) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	if _, err := s.key.reload(); err != nil {
		s.log.Warn("cannot re-read the API key; using the one read before", "err", err)
	}
	u := *s.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("x-api-key", s.key.get())
	req.Header.Set("Accept", "application/json, application/octet-stream")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	err = fmt.Errorf("%s %s: %s", req.Method, path, resp.Status)
	if t := strings.TrimSpace(string(b)); t != "" {
		err = fmt.Errorf("%w: %s", err, s.key.secrets.Peer(t, 200))
	}
	if d, ok := retry.ParseRetryAfter(resp.Header, time.Now()); ok { // wall time: an HTTP date
		return nil, retry.RetryAfter(err, d)
	}
	return nil, err
}
