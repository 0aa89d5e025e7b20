package frameio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/httpx"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/internal/timesync"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// assetProgress is the resumable state of one asset in the spool item's
// progress log (0600, fsynced), so a restart resumes without creating the
// asset again or re-sending finished parts. It is written once, after the
// create, with the upload URLs; each finished part then appends its index, a
// few bytes (spool.AppendProgress), except the last, after which the item
// is removed anyway (a crash in between re-sends that one part, which S3
// overwrites). A board writes to an SD card: rewriting the record per part
// cost two fsyncs and the whole record each time (with every URL inline,
// 1000 URLs of 1 KB once made a 10-byte asset cost ~1 GB of fsynced
// writes). URLs are credentials for ~24 h and are never logged.
type assetProgress struct {
	AssetID string    `json:"asset_id"`
	Created time.Time `json:"created"`
	// CreatedStamp times the create on the board's monotonic clock, so the
	// URLs' age is right across a wall-clock step (internal/timesync).
	CreatedStamp *timesync.Stamp `json:"created_stamp,omitempty"`
	Parts        int             `json:"parts"`
	URLs         []string        `json:"urls,omitempty"`
	// URLsSum and Done are the form an earlier version wrote (the URLs in
	// their own file, the record rewritten per part); still read.
	URLsSum string `json:"urls_sha256,omitempty"`
	Done    []bool `json:"done,omitempty"`
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
// never more than 10 000 (docs/protocols/frameio-c2c.md §5.2).
func (l *Link) partCount(size int64) int {
	n := (size + l.opts.PartSize - 1) / l.opts.PartSize
	if most := size / l.opts.MinPartSize; n > most {
		n = most
	}
	return int(min(max(n, 1), 10000))
}

// partRange returns part i of n of a size-byte asset
// (docs/protocols/frameio-c2c.md §5.2: part size is ceil(size/n), the last
// part holds the remainder).
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
//
// A user may cancel the item or pause uploading while it is in flight (the
// console): ctx ends with spool.ErrCancelled or spool.ErrPaused. The parts
// already sent are in the progress log, so a paused asset resumes with the
// next part; a cancelled one is gone from the spool, and the asset Frame.io
// created for it stays incomplete there.
func (l *Link) deliver(ctx context.Context, it spool.Item, body *os.File) error {
	l.urlsGC.Do(l.removeStaleURLs)
	err := l.deliverItem(ctx, it, body)
	var refused *itemRefused
	if err == nil || errors.As(err, &refused) || errors.Is(context.Cause(ctx), spool.ErrCancelled) {
		l.removeURLs(it.ID) // the spool drops the item now (or did)
	}
	if c := context.Cause(ctx); ctx.Err() != nil && (errors.Is(c, spool.ErrCancelled) || errors.Is(c, spool.ErrPaused)) {
		l.log.Info("asset upload stopped", "id", it.ID, "why", c)
		return err
	}
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
	prog := readProgress(it)
	switch {
	case prog.AssetID == "":
	case l.urlsAge(prog) > l.opts.URLLifetime:
		l.log.Warn("asset upload URLs expired; creating the asset again", "name", meta.Name)
		prog = assetProgress{}
	default:
		if err := l.checkURLs(it.ID, &prog); err != nil {
			l.log.Warn("asset upload URLs unusable; creating the asset again", "name", meta.Name, "err", err)
			prog = assetProgress{}
		}
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

// createAsset sends POST /v2/devices/assets with offset computed now
// (docs/protocols/frameio-c2c.md §5.3).
func (l *Link) createAsset(ctx context.Context, it spool.Item, meta assetMeta) (*assetProgress, error) {
	now := l.deps.Clock.Now()
	if now.Before(l.opts.ClockFloor) {
		return nil, retry.RetryAfter(errClockNotSet, l.opts.ClockWait)
	}
	age, captured := l.captureAge(it, meta, now)
	if since, paused := l.pausedSince(); paused && !captured.Before(since) {
		l.log.Info("asset_skipped_paused", "name", meta.Name)
		return nil, retry.Permanent(&itemRefused{fmt.Errorf("asset %s: captured while the channel is paused", meta.Name)})
	}
	offset := int64(age / time.Second)
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
	if resp.ID == "" || len(resp.UploadURLs) != req.Parts {
		return nil, fmt.Errorf("asset create: response with id %q and %d upload_urls for the %d parts asked", l.peer(resp.ID), len(resp.UploadURLs), req.Parts)
	}
	if err := l.checkUploadURLs(resp.UploadURLs); err != nil {
		return nil, fmt.Errorf("asset create %q: %w", l.peer(resp.ID), err)
	}
	l.log.Info("asset_created", "id", l.peer(resp.ID), "name", meta.Name, "size", it.Size, "parts", len(resp.UploadURLs), "offset", offset)
	stamp := l.deps.Time.Now()
	return &assetProgress{AssetID: resp.ID, URLs: resp.UploadURLs, Created: now, CreatedStamp: &stamp, Parts: req.Parts, Done: make([]bool, req.Parts)}, nil
}

// captureAge returns how long ago the asset was captured (offset is that age
// in seconds) and its capture time on the link's clock, now being that
// clock's time. A stamp of this boot gives the age from CLOCK_BOOTTIME:
// exact whether or not NTP has set the wall clock yet, and never negative
// when the wall clock jumped backwards (internal/timesync). An item without
// a usable stamp (queued by an older version, or before sync in an earlier
// boot) falls back to wall times: offset 0 when its capture time is
// implausible, else now minus its capture time, at least 0.
func (l *Link) captureAge(it spool.Item, meta assetMeta, now time.Time) (time.Duration, time.Time) {
	if it.Stamp != nil {
		c := l.deps.Time.Resolve(*it.Stamp)
		if c.Quality != timesync.Uncorrectable {
			return c.Age, now.Add(-c.Age)
		}
		l.log.Warn("asset captured in an earlier boot before the clock was synchronized; its capture time cannot be corrected",
			"name", meta.Name, "captured", c.Time.UTC().Format(time.RFC3339))
	}
	if meta.Captured.Before(l.opts.ClockFloor) {
		l.log.Warn("asset captured before the clock was set; sending offset 0", "name", meta.Name)
		return 0, meta.Captured
	}
	return max(now.Sub(meta.Captured), 0), meta.Captured
}

// checkUploadURLs refuses upload URLs that would send the media in clear
// text or to a malformed place: https only, unless api_url itself is plain
// http (tests, a LAN fake), and then http only on its host name. Errors
// name the part and the origin, never the URL (its query is a credential).
func (l *Link) checkUploadURLs(urls []string) error {
	base, err := url.Parse(l.cfg.APIURL)
	if err != nil {
		return fmt.Errorf("api_url: %w", err)
	}
	for i, u := range urls {
		if _, err := httpx.CheckServerURL(fmt.Sprintf("upload_urls[%d]", i), u, base, "https", "http"); err != nil {
			return err
		}
	}
	return nil
}

// readProgress returns the asset's state from the spool item's progress log:
// the record written at the create with the parts finished since marked
// done. Anything unreadable is "no asset yet".
func readProgress(it spool.Item) assetProgress {
	var prog assetProgress
	if len(it.Progress) == 0 || string(it.Progress) == "null" {
		return prog
	}
	if err := json.Unmarshal(it.Progress, &prog); err != nil || prog.Parts <= 0 || prog.Parts > 10000 {
		return assetProgress{}
	}
	if len(prog.Done) != prog.Parts {
		prog.Done = make([]bool, prog.Parts)
	}
	for _, u := range it.Updates {
		var i int
		if json.Unmarshal(u, &i) == nil && i >= 0 && i < prog.Parts {
			prog.Done[i] = true
		}
	}
	return prog
}

// urlsAge is how long ago the asset's URLs were issued: on the monotonic
// clock when the create was stamped in this boot, else by the wall clock.
func (l *Link) urlsAge(prog assetProgress) time.Duration {
	if prog.CreatedStamp != nil {
		if c := l.deps.Time.Resolve(*prog.CreatedStamp); c.Quality != timesync.Uncorrectable {
			return c.Age
		}
	}
	return l.deps.Clock.Now().Sub(prog.Created)
}

// checkURLs makes sure prog has one upload URL per part, reading them from
// the URLs file an earlier version wrote when the record has none.
func (l *Link) checkURLs(id string, prog *assetProgress) error {
	if prog.URLs == nil {
		return l.loadURLs(id, prog)
	}
	if len(prog.URLs) != prog.Parts {
		return fmt.Errorf("upload URLs: %d URLs for %d parts", len(prog.URLs), prog.Parts)
	}
	return nil
}

// urlsDir held one file of upload URLs per asset being uploaded, in the
// link's private state directory, before the URLs moved into the progress
// log; an item queued then still has its file there.
func (l *Link) urlsDir() string { return filepath.Join(l.deps.StateDir, "upload-urls") }

func (l *Link) urlsPath(id string) string { return filepath.Join(l.urlsDir(), id+".json") }

// loadURLs reads the URLs file of spool item id (an earlier version's) into
// prog, checking that it is the one prog's asset was created with and has
// one URL per part.
func (l *Link) loadURLs(id string, prog *assetProgress) error {
	b, err := os.ReadFile(l.urlsPath(id))
	if err != nil {
		return fmt.Errorf("upload URLs: %w", err)
	}
	sum := sha256.Sum256(b)
	if prog.URLsSum == "" || hex.EncodeToString(sum[:]) != prog.URLsSum {
		return errors.New("upload URLs: file does not match the progress record")
	}
	var urls []string
	if err := json.Unmarshal(b, &urls); err != nil {
		return fmt.Errorf("upload URLs: %w", err)
	}
	if len(urls) != prog.Parts || len(prog.Done) != prog.Parts {
		return fmt.Errorf("upload URLs: %d URLs and %d part marks for %d parts", len(urls), len(prog.Done), prog.Parts)
	}
	prog.URLs = urls
	return nil
}

// removeURLs deletes the URLs file of spool item id (gone or never made is
// fine). A failure only leaves a file removeStaleURLs deletes later.
func (l *Link) removeURLs(id string) {
	if err := removeFile(l.urlsPath(id)); err != nil {
		l.log.Warn("frameio: cannot remove an asset's upload URLs", "err", err)
	}
}

// removeStaleURLs deletes URLs files whose spool item is gone (a crash
// between the spool's removal and removeURLs). Run once per link life,
// before the first delivery.
func (l *Link) removeStaleURLs() {
	ents, err := os.ReadDir(l.urlsDir())
	if err != nil {
		return // none yet
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if _, queued := l.deps.Spool.Get(id); ok && queued {
			continue
		}
		_ = os.Remove(filepath.Join(l.urlsDir(), e.Name()))
	}
}

// putParts uploads the parts not yet done with upload.parallel workers. Each
// finished part but the last is recorded durably (appended to the progress
// log) before the worker takes the next, so a crash re-sends at most the
// parts that were in flight, or the last one.
func (l *Link) putParts(ctx context.Context, it spool.Item, meta assetMeta, body *os.File, prog *assetProgress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := len(prog.URLs)
	todo := make(chan int, n)
	left := 0
	var sent int64 // bytes of the parts done, for the console's progress
	for i, done := range prog.Done {
		if !done {
			todo <- i
			left++
		} else {
			_, length := partRange(it.Size, n, i)
			sent += length
		}
	}
	close(todo)
	l.deps.Spool.ReportSent(it.ID, sent)
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
					sent += length
					l.deps.Spool.ReportSent(it.ID, sent)
					if left--; left > 0 {
						err = l.deps.Spool.AppendProgress(it.ID, i)
					}
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
	// The signature covers content-type;host;x-amz-acl
	// (docs/protocols/frameio-c2c.md §5.2); no Authorization header goes to
	// S3.
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
	if d := rateLimitWait(resp.Header, l.deps.Clock.Now(), l.api.waits); d > 0 {
		return retry.RetryAfter(err, d)
	}
	return err
}
