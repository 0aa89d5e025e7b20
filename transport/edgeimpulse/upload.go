package edgeimpulse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// spoolKind marks this link's items in its spool.
const spoolKind = "edgeimpulse-sample"

// uploadTimeout bounds one ingestion request.
const uploadTimeout = 5 * time.Minute

// The x-upload-source and x-device-type values of the reference clients
// (docs/protocols/edge-impulse.md §5.4): edge-impulse-linux's uploader on
// /files, edge-impulse-cli's data forwarder on /data (which sends no device
// type; the acquisition file carries one).
const (
	uploadSourceFiles     = "EDGE_IMPULSE_CLI_UPLOADER"
	uploadDeviceTypeFiles = "EDGE_IMPULSE_CLI"
	uploadSourceData      = "EDGE_IMPULSE_CLI_FORWARDER"
)

// maxReplyBody bounds how much of an ingestion reply is read (its verdict,
// its reason for a refusal).
const maxReplyBody = 64 << 10

// uploadMeta is what the spool keeps next to a sample's bytes: everything
// needed to POST it later, except the API key (a secret, taken from the
// config at send time so it never lands on disk twice).
type uploadMeta struct {
	Path        string `json:"path"`
	FileName    string `json:"file_name"`
	Label       string `json:"label"`
	ContentType string `json:"content_type"`
	// Files marks a multipart /files upload, whose JSON reply is checked.
	Files  bool   `json:"files,omitempty"`
	Rows   int    `json:"rows,omitempty"`
	Sensor string `json:"sensor,omitempty"`
}

// enqueue stores a finished sample durably (a series' pending file is
// committed, a still's body written) with its capture stamp, and registers
// the caller as the waiter for the first delivery attempt. Holding wmu
// across the commit and the registration means the worker, which takes wmu
// before its first attempt, always finds the waiter.
func (l *Link) enqueue(c captured) (string, <-chan error, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	meta := c.meta
	var (
		it  spool.Item
		err error
	)
	if c.pend != nil {
		it, err = c.pend.Commit(spoolKind, meta, &c.stamp)
	} else {
		it, err = l.deps.Spool.PutStamped(spoolKind, meta, &c.stamp, c.body)
	}
	if err != nil {
		if errors.Is(err, spool.ErrFull) {
			l.log.Error("spool full: sample refused", "sensor", meta.Sensor, "label", meta.Label)
		}
		return "", nil, err
	}
	ch := make(chan error, 1)
	l.waiters[it.ID] = ch
	l.deps.Stats.SetDetail("spooled", fmt.Sprint(l.deps.Spool.Stats().Items))
	return it.ID, ch, nil
}

// forget drops a waiter that stopped waiting (its item stays spooled).
func (l *Link) forget(id string) {
	l.wmu.Lock()
	delete(l.waiters, id)
	l.wmu.Unlock()
}

// post sends one item to ingestion_url + path. 2xx is success (for /files
// the JSON verdict of every file must be success too); 409 means an identical
// file is already stored (x-disallow-duplicates), which for a retried upload
// is success; 401/403 are retried with api_key_file re-read (the key may have
// been rotated; the sample must not be lost meanwhile). A captured sample is
// dropped only when ingestion said the sample itself is invalid: a 400, 413
// or 422 with a reason, or a /files verdict refusing it; each drop is counted
// by reason (drops). Every other answer (any 3xx, other 4xx, a bare 400 or a
// proxy's HTML page, 5xx, 408, 429, an unreadable verdict) and network errors
// keep the sample spooled and are retried with backoff: a proxy or a deploy
// in between answers those for minutes.
func (l *Link) post(ctx context.Context, it spool.Item, body *os.File) error {
	var m uploadMeta
	if err := json.Unmarshal(it.Meta, &m); err != nil || it.Kind != spoolKind {
		return l.drops.drop(l.deps.Stats, dropDamaged, fmt.Errorf("ingestion: item %s is not an Edge Impulse sample", it.ID))
	}
	u := *l.ingest
	u.Path = strings.TrimRight(u.Path, "/") + m.Path
	u.RawPath = ""
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), io.NopCloser(body))
	if err != nil {
		return retry.Permanent(fmt.Errorf("ingestion: %w", err))
	}
	req.ContentLength = it.Size
	req.Header.Set("x-api-key", l.key.get())
	req.Header.Set("x-file-name", url.PathEscape(m.FileName))
	if m.Label != "" {
		req.Header.Set("x-label", url.PathEscape(m.Label))
	} else {
		req.Header.Set("x-no-label", "1")
	}
	req.Header.Set("x-disallow-duplicates", "1")
	// A unique id after the stored name: every sample of a label has the
	// same file name, and two must not collide
	// (docs/protocols/edge-impulse.md §5.2).
	req.Header.Set("x-add-date-id", "1")
	// What the reference uploaders send (docs/protocols/edge-impulse.md
	// §5.4): edge-impulse-linux's uploader for files, the data forwarder
	// for signed acquisition files.
	if m.Files {
		req.Header.Set("x-upload-source", uploadSourceFiles)
		req.Header.Set("x-device-type", uploadDeviceTypeFiles)
	} else {
		req.Header.Set("x-upload-source", uploadSourceData)
	}
	req.Header.Set("Content-Type", m.ContentType)
	req.Header.Set("User-Agent", "edge-agent/"+l.deps.Version)
	resp, err := l.http.Do(req)
	if err != nil {
		return fmt.Errorf("ingestion post %s: %w", m.Path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyBody+1))
	var reason string
	if len(rb) > maxReplyBody {
		// Cut before it could be masked: the head may end in the first
		// bytes of an echoed key, which PeerHead drops.
		rb = rb[:maxReplyBody]
		reason = l.deps.Secrets.PeerHead(strings.TrimSpace(string(rb)), maxPeerText)
	} else {
		reason = l.peer(strings.TrimSpace(string(rb)))
	}
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		if m.Files {
			if refused, err := filesVerdict(rb, l.peer); err != nil {
				err = fmt.Errorf("ingestion post %s: %w", m.Path, err)
				if refused {
					return l.drops.drop(l.deps.Stats, dropRefused, err)
				}
				return err
			}
		}
		l.deps.Stats.BytesOut.Add(it.Size)
		l.log.Info("sample uploaded", "sensor", m.Sensor, "label", m.Label, "path", m.Path, "bytes", it.Size)
		return nil
	case code == http.StatusConflict:
		l.log.Info("sample already stored by ingestion (duplicate)", "label", m.Label, "path", m.Path)
		return nil
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		err := fmt.Errorf("ingestion post %s: %s: api key refused", m.Path, resp.Status)
		if changed, rerr := l.key.reload(); rerr != nil {
			err = fmt.Errorf("%w; %w", err, rerr)
		} else if changed {
			l.log.Info("API key changed in api_key_file; retrying the upload with it")
		}
		return err
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		err := fmt.Errorf("ingestion post %s: %s: %s", m.Path, resp.Status, reason)
		if d, ok := l.waits.Header(resp.Header, l.deps.Clock.Now()); ok {
			return retry.RetryAfter(err, d)
		}
		return err
	}
	if sampleInvalid(code, resp.Header.Get("Content-Type"), rb) {
		why := dropInvalid
		if code == http.StatusRequestEntityTooLarge {
			why = dropTooLarge
		}
		return l.drops.drop(l.deps.Stats, why, fmt.Errorf("ingestion post %s: sample refused: %s: %s", m.Path, resp.Status, reason))
	}
	return fmt.Errorf("ingestion post %s: %s: %s (sample kept; retrying)", m.Path, resp.Status, reason)
}

// filesVerdict checks a /files reply: {"success":true,"files":[{"success":true},…]}.
// The service's error texts pass through peer before they go in the error.
// It reports refused when the reply is a verdict refusing the file (the
// sample is then dropped) rather than something unreadable (kept).
func filesVerdict(b []byte, peer func(string) string) (refused bool, err error) {
	var r struct {
		Success bool   `json:"success"`
		Error   string `json:"error"`
		Files   []struct {
			Success bool   `json:"success"`
			Error   string `json:"error"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return false, fmt.Errorf("unreadable reply: %w", err)
	}
	if !r.Success {
		return true, fmt.Errorf("refused: %s", peer(r.Error))
	}
	for i, f := range r.Files {
		if !f.Success {
			return true, fmt.Errorf("file %d refused: %s", i, peer(f.Error))
		}
	}
	return false, nil
}
