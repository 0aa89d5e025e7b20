package capture

import (
	"context"
	"errors"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// FeedOptions are the ways a capture ends early, and its progress.
type FeedOptions struct {
	// Deadline ends the capture with ErrDeadline when it delivers; a
	// nil channel never does.
	Deadline <-chan time.Time
	// Stop ends the capture with the error it delivers, which must not
	// be nil (a source's permanent failure); a nil channel never does.
	Stop <-chan error
	// Progress, when set, is called after every sample the writer took.
	Progress func()
}

// Why Feed ended, besides ctx's error, the Stop channel's and the
// writer's.
var (
	// ErrHubClosed: the subscription closed before the window was complete.
	ErrHubClosed = errors.New("the sensor hub closed")
	// ErrDeadline: FeedOptions.Deadline fired first; the sensor delivered
	// too slowly, or kept failing.
	ErrDeadline = errors.New("the capture's time limit passed")
)

// Feed adds sub's samples to w until the window is complete (nil), ctx
// ends (ctx's error), the subscription closes (ErrHubClosed), o.Stop or
// o.Deadline delivers, or w fails. It does not close w or sub: the caller
// does, on every path.
//
// At the first access unit of a video that is not a keyframe Feed asks the
// source for one, so the file starts now rather than at the camera's next
// keyframe interval (a source that cannot do it answers
// ErrNoKeyframeControl and the writer waits).
func Feed(ctx context.Context, sub sensors.Subscription, w Writer, o FeedOptions) error {
	askedKeyframe := false
	for {
		select {
		case s, ok := <-sub.C():
			if !ok {
				return ErrHubClosed
			}
			if s.Class == sensors.Video && !s.Keyframe && !askedKeyframe {
				askedKeyframe = true
				_ = sub.RequestKeyframe()
			}
			done, err := w.Add(s)
			if err != nil {
				return err
			}
			if o.Progress != nil {
				o.Progress()
			}
			if done {
				return nil
			}
		case err := <-o.Stop:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-o.Deadline:
			return ErrDeadline
		}
	}
}
