package edgeimpulse

import (
	"context"
	"fmt"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
	"github.com/edge-agent/edge-agent/sensors"
)

// lowQuality is the JPEG quality of low-resolution snapshot frames.
const lowQuality = 80

// scaleJPEG shrinks a camera frame to height pixels high (aspect kept) and
// re-encodes it at lowQuality; a frame already that small comes back
// unchanged. camjpeg does the work: with cgo, libjpeg-turbo decodes at 1/2,
// 1/4 or 1/8 scale in the IDCT (a 640×480 frame never exists at full size)
// and encodes from the shrunk planes; without cgo, image/jpeg. When sub is
// the hub's subscription, the preview comes from the camera's shared
// cache, so several links streaming one camera pay for one encode per
// frame; the result is then shared and must not be modified.
func scaleJPEG(ctx context.Context, sub sensors.Subscription, data []byte, height int) ([]byte, error) {
	var sc scaler
	return sc.scale(ctx, sub, data, height)
}

// scaler is scaleJPEG for one snapshot stream: a preview it makes itself is
// appended to the buffer of the one before, so a stream allocates none per
// frame. Its result is valid until the next call.
//
// Concurrency: owned by one goroutine.
type scaler struct{ buf []byte }

func (sc *scaler) scale(ctx context.Context, sub sensors.Subscription, data []byte, height int) ([]byte, error) {
	var out []byte
	var err error
	if th, ok := sub.(camjpeg.Thumbnailer); ok {
		out, err = th.Thumbnail(ctx, data, height, lowQuality) // shared: never a later dst
	} else if out, err = camjpeg.Thumbnail(sc.buf[:0], data, height, lowQuality); err == nil {
		sc.buf = out
	}
	if err != nil {
		return nil, fmt.Errorf("scale snapshot: %w", err)
	}
	return out, nil
}
