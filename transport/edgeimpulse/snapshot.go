package edgeimpulse

import (
	"context"
	"encoding/base64"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// lowHeight is the height of low-resolution snapshot frames
// (docs/protocols/edge-impulse.md §4.7).
const lowHeight = 96

// snapRun is one running snapshot stream.
type snapRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	res    chan string // resolution changes (a start while streaming), cap 1
}

// startSnapshot starts streaming the camera ("low": 96 px high, at most one
// frame per SnapshotLowInterval; "high": full frames at the camera's rate).
// A start while streaming switches the resolution and re-sends
// snapshotStarted, as the Linux client does. It runs beside a sample.
func (s *session) startSnapshot(ctx context.Context, res string) {
	if s.l.camera == "" {
		_ = s.send(ctx, snapshotFailed{SnapshotFailed: true, Error: "Device does not support snapshot streaming"})
		return
	}
	if res != "low" && res != "high" {
		_ = s.send(ctx, snapshotFailed{SnapshotFailed: true, Error: "unknown resolution " + res})
		return
	}
	s.mu.Lock()
	if run := s.snap; run != nil {
		s.mu.Unlock()
		select {
		case <-run.res: // replace a change not yet picked up
		default:
		}
		run.res <- res
		_ = s.send(ctx, snapshotStarted{SnapshotStarted: true})
		return
	}
	sub, err := s.l.deps.Hub.Subscribe(s.l.camera, sensors.SubscribeOptions{Policy: sensors.DropOldest, Queue: 2, Label: s.l.deps.Name})
	if err != nil {
		s.mu.Unlock()
		_ = s.send(ctx, snapshotFailed{SnapshotFailed: true, Error: "camera unavailable: " + err.Error()})
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	run := &snapRun{cancel: cancel, done: make(chan struct{}), res: make(chan string, 1)}
	s.snap = run
	s.mu.Unlock()
	s.l.log.Info("snapshot streaming started", "camera", s.l.camera, "resolution", res)
	s.l.deps.Stats.SetDetail("snapshot", s.l.camera)
	_ = s.send(ctx, snapshotStarted{SnapshotStarted: true})
	s.tasks.Go(func() {
		defer close(run.done)
		defer sub.Close()
		if failed := s.stream(sctx, sub, run, res); failed != "" {
			s.mu.Lock()
			if s.snap == run {
				s.snap = nil
			}
			s.mu.Unlock()
			s.l.deps.Stats.SetDetail("snapshot", "")
			_ = s.send(ctx, snapshotFailed{SnapshotFailed: true, Error: failed})
		}
	})
}

// stopSnapshot ends the stream and answers snapshotStopped once its last frame
// is queued; without a stream there is no reply (docs/protocols/edge-impulse.md
// §4.7).
func (s *session) stopSnapshot(ctx context.Context) {
	if s.stopSnapshotLocked() {
		s.l.log.Info("snapshot streaming stopped", "camera", s.l.camera)
		_ = s.send(ctx, snapshotStopped{SnapshotStopped: true})
	}
}

// stopSnapshotLocked stops a running stream and waits for it; it reports
// whether one was running. (It takes s.mu itself; the name follows the
// stream's lock discipline: callers must not hold s.mu.)
func (s *session) stopSnapshotLocked() bool {
	s.mu.Lock()
	run := s.snap
	s.snap = nil
	s.mu.Unlock()
	if run == nil {
		return false
	}
	run.cancel()
	<-run.done
	s.l.deps.Stats.SetDetail("snapshot", "")
	return true
}

// stream sends frames until ctx ends; it returns a reason when the stream
// failed on its own (the camera went away).
func (s *session) stream(ctx context.Context, sub sensors.Subscription, run *snapRun, res string) string {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return ""
		case res = <-run.res:
		case smp, open := <-sub.C():
			if !open {
				return "camera stopped"
			}
			data := smp.Data
			if res == "low" {
				// Throttle on capture time: a 5 fps camera's frames are
				// exactly 200 ms apart there, while arrival times jitter.
				at := smp.Time
				if at.IsZero() {
					at = s.l.deps.Clock.Now()
				}
				if d := at.Sub(last); d >= 0 && d < s.l.opts.SnapshotLowInterval {
					continue
				}
				last = at
				small, err := scaleJPEG(data, lowHeight)
				if err != nil {
					s.l.logLimited(&s.l.warns.snapshotScale, "snapshot frame skipped", "err", err)
					continue
				}
				data = small
			}
			s.sendFrame(snapshotFrame{SnapshotFrame: base64.StdEncoding.EncodeToString(data), FileName: "frame.jpg"})
		}
	}
}
