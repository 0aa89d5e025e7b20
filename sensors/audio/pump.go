package audio

import (
	"context"
	"errors"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

var (
	// errStopped: the backend stopped the device on its own (unplugged).
	errStopped = errors.New("capture device stopped (unplugged?)")
	// errStalled: no PCM for the stall timeout (ALSA does not always report
	// an unplugged USB mic).
	errStalled = errors.New("no audio from the capture device (gone?)")
)

// capture is one callback's worth of PCM and when it arrived.
type capture struct {
	at  time.Time
	pcm []byte
}

// pump moves callback PCM through the chunker to out until ctx ends (nil),
// the device stops (errStopped) or nothing arrives for `stall`
// (errStalled). It is the backend-independent half of Run, so it is tested
// with synthetic PCM in every build.
func pump(ctx context.Context, out chan<- sensors.Sample, ck *chunker, blocks <-chan capture, stopped <-chan struct{}, stall time.Duration) error {
	timer := time.NewTimer(stall)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-stopped:
			if ctx.Err() != nil {
				return nil
			}
			return errStopped
		case <-timer.C:
			return errStalled
		case c := <-blocks:
			timer.Reset(stall)
			for _, smp := range ck.push(c.pcm, c.at) {
				select {
				case out <- smp:
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
}
