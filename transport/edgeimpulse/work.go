package edgeimpulse

import (
	"context"
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
func (l *Link) deliver(ctx context.Context, it spool.Item, body *os.File) error {
	l.wmu.Lock()
	waiter := l.waiters[it.ID]
	delete(l.waiters, it.ID)
	l.wmu.Unlock()
	err := l.post(ctx, it, body)
	if waiter != nil {
		waiter <- err // buffered: never blocks
	}
	if err == nil {
		l.deps.Stats.SetDetail("spooled", fmt.Sprint(max(l.deps.Spool.Stats().Items-1, 0)))
	}
	return err
}
