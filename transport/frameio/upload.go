package frameio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// assetProgress is the resumable state of one asset, stored with the spool
// item (0600, fsynced) after the create and after every finished part, so a
// restart resumes without re-sending finished parts. URLs are credentials
// for ~24 h and are never logged.
type assetProgress struct {
	AssetID string    `json:"asset_id"`
	URLs    []string  `json:"upload_urls"`
	Created time.Time `json:"created"`
	Done    []bool    `json:"done"`
}

type createRequest struct {
	Name     string `json:"name"`
	Filetype string `json:"filetype"`
	Filesize int64  `json:"filesize"`
	Offset   int64  `json:"offset"`
	Channel  int    `json:"channel"`
	Parts    int    `json:"parts,omitempty"`
}

type createResponse struct {
	ID         string   `json:"id"`
	UploadURLs []string `json:"upload_urls"`
}

var (
	errClockNotSet = errors.New("asset create held: the wall clock is not set yet (waiting for NTP)")
	errURLExpired  = errors.New("presigned upload URL expired")
)

// partCount picks how many upload URLs to ask for: about PartSize each, but
// never parts below MinPartSize (S3's floor for all but the last part) and
// never more than 10 000 (§4.2).
func (l *Link) partCount(size int64) int {
	n := (size + l.opts.PartSize - 1) / l.opts.PartSize
	if most := size / l.opts.MinPartSize; n > most {
		n = most
	}
	return int(min(max(n, 1), 10000))
}

// partRange returns part i of n of a size-byte asset (§4.2: part size is
// ceil(size/n), the last part holds the remainder).
func partRange(size int64, n, i int) (off, length int64) {
	ps := (size + int64(n) - 1) / int64(n)
	off = int64(i) * ps
	end := min(off+ps, size)
	if off > size {
		return size, 0
	}
	return off, end - off
}

// heldWait is how long an item waits when the link itself cannot upload
// (re-pairing needed, client credentials refused).
const heldWait = time.Minute

// deliver is the spool's DeliverFunc: create the asset once, then PUT the
// parts that are not done yet. It returns retry.Permanent only when Frame.io
// refused this item for good, such as 409 Channel Paused (the spool drops it
// with a log line; a watched file's original stays on disk). A permanent
// problem of the link holds the queue instead: nothing captured is dropped
// because a token died.
func (l *Link) deliver(ctx context.Context, it spool.Item, body *os.File) error {
	err := l.deliverItem(ctx, it, body)
	var refused *itemRefused
	if retry.IsPermanent(err) && !errors.As(err, &refused) {
		wait := heldWait
		if l.opts.NotPairedWait < wait {
			wait = max(l.opts.NotPairedWait, 10*time.Millisecond)
		}
		return retry.RetryAfter(fmt.Errorf("asset upload held: %v", err), wait)
	}
	return err
}

func (l *Link) deliverItem(ctx context.Context, it spool.Item, body *os.File) error {
	var meta assetMeta
	if err := json.Unmarshal(it.Meta, &meta); err != nil || meta.Name == "" {
		return retry.Permanent(&itemRefused{fmt.Errorf("asset %s: damaged metadata", it.ID)})
	}
	var prog assetProgress
	if len(it.Progress) > 0 && string(it.Progress) != "null" {
		if err := json.Unmarshal(it.Progress, &prog); err != nil {
			prog = assetProgress{}
		}
	}
	now := l.deps.Clock.Now()
	if prog.AssetID != "" && (now.Sub(prog.Created) > l.opts.URLLifetime || len(prog.Done) != len(prog.URLs)) {
		l.log.Warn("asset upload URLs expired; creating the asset again", "name", meta.Name)
		prog = assetProgress{}
	}
	if prog.AssetID == "" {
		p, err := l.createAsset(ctx, it, meta)
		if err != nil {
			return err
		}
		prog = *p
		if err := l.deps.Spool.SetProgress(it.ID, prog); err != nil {
			return fmt.Errorf("asset %s: %w", meta.Name, err)
		}
	}
	start := l.deps.Clock.Now()
	if err := l.putParts(ctx, it, meta, body, &prog); err != nil {
		if errors.Is(err, errURLExpired) {
			_ = l.deps.Spool.SetProgress(it.ID, nil) // start over with a new asset
		}
		return err
	}
	d := l.deps.Clock.Now().Sub(start)
	l.log.Info("asset_uploaded", "id", prog.AssetID, "name", meta.Name, "bytes", it.Size, "duration", d.Round(time.Millisecond))
	return nil
}

// createAsset sends POST /v2/devices/assets with offset computed now (§4.3).
func (l *Link) createAsset(ctx context.Context, it spool.Item, meta assetMeta) (*assetProgress, error) {
	now := l.deps.Clock.Now()
	if now.Before(l.opts.ClockFloor) {
		return nil, retry.RetryAfter(errClockNotSet, l.opts.ClockWait)
	}
	if since, paused := l.pausedSince(); paused && !meta.Captured.Before(since) {
		l.log.Info("asset_skipped_paused", "name", meta.Name)
		return nil, retry.Permanent(&itemRefused{fmt.Errorf("asset %s: captured while the channel is paused", meta.Name)})
	}
	var offset int64
	if meta.Captured.Before(l.opts.ClockFloor) {
		l.log.Warn("asset captured before the clock was set; sending offset 0", "name", meta.Name)
	} else if d := now.Sub(meta.Captured); d > 0 {
		offset = int64(d / time.Second)
	}
	req := createRequest{Name: meta.Name, Filetype: meta.Filetype, Filesize: it.Size, Offset: offset,
		Channel: l.cfg.Channel, Parts: l.partCount(it.Size)}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("asset create: %w", err)
	}
	access, err := l.access(ctx)
	if err != nil {
		return nil, err
	}
	var resp createResponse
	post := func(tok string) error {
		return l.api.do(ctx, "asset create", http.MethodPost, "/v2/devices/assets", tok, bytes.NewReader(b), "application/json", &resp)
	}
	err = post(access)
	if isAuthError(err) {
		if access, err = l.refresh(ctx, access); err != nil {
			return nil, err
		}
		err = post(access)
	}
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			if ae.Status == http.StatusTooManyRequests {
				l.log.Warn("rate_limited", "endpoint", "assets", "wait", ae.Wait)
			}
			if ae.Status == http.StatusConflict && strings.EqualFold(ae.Message, "Channel Paused") {
				l.log.Info("asset_skipped_paused", "name", meta.Name)
			}
			return nil, classify(ae)
		}
		return nil, l.explainNetErr(ctx, err)
	}
	if resp.ID == "" || len(resp.UploadURLs) == 0 || len(resp.UploadURLs) > 10000 {
		return nil, fmt.Errorf("asset create: response with id %q and %d upload_urls", safeText(resp.ID), len(resp.UploadURLs))
	}
	l.log.Info("asset_created", "id", safeText(resp.ID), "name", meta.Name, "size", it.Size, "parts", len(resp.UploadURLs), "offset", offset)
	return &assetProgress{AssetID: resp.ID, URLs: resp.UploadURLs, Created: now, Done: make([]bool, len(resp.UploadURLs))}, nil
}

// putParts uploads the parts not yet done with upload.parallel workers. Each
// finished part is recorded durably before the next is taken, so a crash
// re-sends at most the parts that were in flight.
func (l *Link) putParts(ctx context.Context, it spool.Item, meta assetMeta, body *os.File, prog *assetProgress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := len(prog.URLs)
	todo := make(chan int, n)
	for i, done := range prog.Done {
		if !done {
			todo <- i
		}
	}
	close(todo)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	workers := min(l.cfg.Upload.Parallel, n)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range todo {
				off, length := partRange(it.Size, n, i)
				err := l.putPart(ctx, prog.URLs[i], meta.Filetype, io.NewSectionReader(body, off, length), length)
				mu.Lock()
				if err == nil {
					prog.Done[i] = true
					err = l.deps.Spool.SetProgress(it.ID, *prog)
				}
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("asset %s part %d/%d: %w", meta.Name, i+1, n, err)
					cancel()
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// putPart PUTs one part with its exact length (S3 refuses chunked bodies),
// retrying on the same URL (idempotent: S3 overwrites the part).
func (l *Link) putPart(ctx context.Context, url, filetype string, r *io.SectionReader, length int64) error {
	bo := retry.New(l.opts.PartRetry)
	var err error
	for attempt := 0; attempt < l.opts.PartAttempts; attempt++ {
		if attempt > 0 {
			if serr := l.deps.Clock.Sleep(ctx, bo.NextFor(err)); serr != nil {
				return serr
			}
		}
		err = l.putOnce(ctx, url, filetype, r, length)
		if err == nil || errors.Is(err, errURLExpired) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (l *Link) putOnce(ctx context.Context, url, filetype string, r *io.SectionReader, length int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, io.NewSectionReader(r, 0, length))
	if err != nil {
		return fmt.Errorf("part put: %w", redactErr(err))
	}
	req.ContentLength = length
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(r, 0, length)), nil }
	// The signature covers content-type;host;x-amz-acl (§4.2); no
	// Authorization header goes to S3.
	req.Header.Set("Content-Type", filetype)
	req.Header.Set("x-amz-acl", "private")
	resp, err := l.api.client.Do(req)
	if err != nil {
		return fmt.Errorf("part put: %w", redactErr(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		l.deps.Stats.BytesOut.Add(length)
		return nil
	}
	if resp.StatusCode == http.StatusForbidden && bytes.Contains(b, []byte("Request has expired")) {
		return errURLExpired
	}
	err = fmt.Errorf("part put: HTTP %d", resp.StatusCode)
	if d := rateLimitWait(resp.Header, l.deps.Clock.Now()); d > 0 {
		return retry.RetryAfter(err, d)
	}
	return err
}
