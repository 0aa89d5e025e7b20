package frameio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// assetKind is the spool item kind of a Frame.io asset.
const assetKind = "frameio-asset"

// assetMeta is what the producer records with a spooled asset. Captured is
// the capture time on the wall clock as it was; the item's timesync stamp,
// when it has one, is what offset is computed from when the create is sent
// (docs/protocols/frameio-c2c.md §5.3).
type assetMeta struct {
	Name     string    `json:"name"`
	Filetype string    `json:"filetype"`
	Captured time.Time `json:"captured"`
	Source   string    `json:"source"`
}

// Work runs for the link's whole life: proactive token refresh, still
// capture, the watch directory and spool delivery. It owns those goroutines
// and returns after all of them stopped (ctx.Err()).
func (l *Link) Work(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	run(l.refreshLoop)
	if l.cfg.Upload.Sensor != "" && l.cfg.Upload.Every.D() > 0 {
		run(l.captureLoop)
	}
	if l.cfg.Upload.WatchDir != "" {
		run(l.watchLoop)
	}
	if l.deps.Spool != nil {
		run(func(ctx context.Context) { _ = l.deps.Spool.Deliver(ctx, l.deliver, l.opts.Deliver) })
	}
	<-ctx.Done()
	wg.Wait()
	return ctx.Err()
}

// refreshCheck bounds how long the refresh loop sleeps before looking again.
const refreshCheck = 5 * time.Minute

// refreshLoop refreshes the access token at ~80 % of its life
// (docs/protocols/frameio-c2c.md §2.4), so neither the socket nor an upload
// ever meets an expired token in the normal case. While unpaired it re-checks
// every NotPairedWait.
func (l *Link) refreshLoop(ctx context.Context) {
	bo := retry.New(retry.Policy{Min: 5 * time.Second, Max: 5 * time.Minute})
	for {
		wait := l.opts.NotPairedWait
		if due, ok := l.tokens.RefreshDue(); ok {
			wait = due.Sub(l.deps.Clock.Now())
		}
		// Re-evaluate at least every refreshCheck: a Pi's wall clock jumps
		// when NTP first syncs, which would make a long sleep wrong.
		if wait > 0 {
			if l.deps.Clock.Sleep(ctx, min(wait, refreshCheck)) != nil {
				return
			}
		}
		if due, ok := l.tokens.RefreshDue(); !ok || l.deps.Clock.Now().Before(due) {
			continue
		}
		_, err := l.access(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case retry.IsPermanent(err):
			return // logged by the token source; the session reports it
		case err != nil:
			if l.deps.Clock.Sleep(ctx, bo.NextFor(err)) != nil {
				return
			}
		default:
			bo.Reset()
		}
	}
}

// captureLoop takes one still every upload.every and spools it. While
// Frame.io says the channel is paused nothing is captured: those assets
// would be refused anyway (docs/protocols/frameio-c2c.md §4.5, §5.3).
func (l *Link) captureLoop(ctx context.Context) {
	every := l.cfg.Upload.Every.D()
	var lastErr string
	for {
		if l.deps.Clock.Sleep(ctx, every) != nil {
			return
		}
		if l.Paused() {
			continue
		}
		err := l.captureOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if err.Error() != lastErr { // rate limit: log each new error once
				l.log.Warn("frameio: still capture failed", "sensor", l.cfg.Upload.Sensor, "err", err)
			}
			lastErr = err.Error()
			continue
		}
		if lastErr != "" {
			l.log.Info("frameio: still capture works again", "sensor", l.cfg.Upload.Sensor)
		}
		lastErr = ""
	}
}

// captureOnce subscribes for one frame only, so the camera runs just while a
// still is taken and no queue drops frames between captures.
func (l *Link) captureOnce(ctx context.Context) error {
	if l.deps.Hub == nil {
		return errors.New("capture: no sensor hub")
	}
	sub, err := l.deps.Hub.Subscribe(l.cfg.Upload.Sensor, sensors.SubscribeOptions{Queue: 1, Policy: sensors.DropOldest, Label: "frameio:" + l.deps.Name})
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer sub.Close()
	if c := sub.Info().Class; c != sensors.Still {
		return fmt.Errorf("capture: sensor %q gives %s, not stills", l.cfg.Upload.Sensor, c)
	}
	tctx, cancel := context.WithTimeout(ctx, l.opts.CaptureTimeout)
	defer cancel()
	var s sensors.Sample
	select {
	case <-tctx.Done():
		return fmt.Errorf("capture: no frame within %s", l.opts.CaptureTimeout)
	case s = <-sub.C():
	}
	now := l.deps.Clock.Now()
	name := fmt.Sprintf("%s_%s_%06d.jpg", l.cfg.Upload.Sensor, now.UTC().Format("20060102_150405"), s.Seq%1e6)
	if err := l.spoolStill(name, "still", s.Data); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}

// UploadStill queues jpeg as an asset named name (a rule's still,
// agent/rules): it is spooled now and uploaded like the periodic stills.
// While Frame.io has the channel paused it is refused (it would be
// rejected). Safe for concurrent use.
func (l *Link) UploadStill(name string, jpeg []byte) error {
	if l.deps.Spool == nil {
		return errors.New("frameio upload still: the link has no spool")
	}
	if l.Paused() {
		return errors.New("frameio upload still: Frame.io has paused this device's channel")
	}
	if err := l.spoolStill(name, "rule", jpeg); err != nil {
		return fmt.Errorf("frameio upload still: %w", err)
	}
	return nil
}

// spoolStill spools a JPEG asset captured now.
func (l *Link) spoolStill(name, source string, jpeg []byte) error {
	now, stamp := l.deps.Clock.Now(), l.deps.Time.Now()
	meta := assetMeta{Name: name, Filetype: "image/jpeg", Captured: now, Source: source}
	_, err := l.deps.Spool.PutStamped(assetKind, meta, &stamp, bytes.NewReader(jpeg))
	return err
}
