package hub

import (
	"context"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
)

// A camera's frame often goes to several links at once, and those that
// want a preview want the same one (Edge Impulse's 96 px snapshot). Each
// feed keeps a camjpeg.Cache, and its subscriptions implement
// camjpeg.Thumbnailer through it: the first subscriber to ask makes the
// preview, the others get the same bytes, so a frame wanted by three links
// at one size is decoded and encoded once.

var _ camjpeg.Thumbnailer = (*sub)(nil)

// Thumbnail returns frame (a sample this subscription received) shrunk to
// height at quality, from the sensor's shared cache. The result is shared
// by every subscriber: read-only, like the sample itself. Safe for
// concurrent use; it waits for another subscriber's encode of the same
// preview, or for ctx.
func (s *sub) Thumbnail(ctx context.Context, frame []byte, height, quality int) ([]byte, error) {
	return s.feed.thumbs.Thumbnail(ctx, frame, height, quality)
}
