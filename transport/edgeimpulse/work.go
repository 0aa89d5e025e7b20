package edgeimpulse

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/edge-agent/edge-agent/upload/spool"
)

// Work delivers spooled samples until ctx ends, oldest first, retrying
// failures with backoff (honouring Retry-After). It is the only code that
// uploads, so an item is never sent twice at the same time.
func (l *Link) Work(ctx context.Context) error {
	defer l.httpTr.CloseIdleConnections()
	return l.deps.Spool.Deliver(ctx, l.deliver, l.opts.UploadRetry)
}

// deliver is Work's callback for one spooled item: it posts the item and
// hands the result to the session waiting for the item's first attempt, if
// one still is (enqueue registered it under wmu, forget removes it).
//
// A user may cancel the item or pause uploading while it is posted (the
// console): ctx ends with spool.ErrCancelled or spool.ErrPaused, the request
// is abandoned, and the waiting session is told which, so Studio hears that
// the sample was removed, or kept for later, rather than a network error.
func (l *Link) deliver(ctx context.Context, it spool.Item, body *os.File) error {
	l.wmu.Lock()
	waiter := l.waiters[it.ID]
	delete(l.waiters, it.ID)
	l.wmu.Unlock()
	err := l.post(ctx, it, body)
	if c := context.Cause(ctx); err != nil && ctx.Err() != nil {
		switch {
		case errors.Is(c, spool.ErrCancelled):
			err = fmt.Errorf("upload cancelled on the device; the sample was removed: %w", c)
		case errors.Is(c, spool.ErrPaused):
			err = fmt.Errorf("uploading paused on the device: %w", c)
		}
	}
	if waiter != nil {
		waiter <- err // buffered: never blocks
	}
	if err == nil {
		l.deps.Stats.SetDetail("spooled", fmt.Sprint(max(l.deps.Spool.Stats().Items-1, 0)))
	}
	return err
}
