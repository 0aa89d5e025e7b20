package rtm

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
)

// iceServers converts the config (or the REST session's) servers.
func iceServers(in []ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(in))
	for _, s := range in {
		ws := webrtc.ICEServer{URLs: s.URLs, Username: s.Username}
		if s.Credential != "" {
			ws.Credential = s.Credential
		}
		out = append(out, ws)
	}
	return out
}

// mediaCounters are per-session publishing counters, read by the session
// for logs and by tests.
type mediaCounters struct {
	videoFrames   atomic.Int64
	videoBytes    atomic.Int64
	audioPackets  atomic.Int64
	keyRequests   atomic.Int64 // PLI/FIR from the receiver
	keyForced     atomic.Int64 // of those, passed on to the source
	gatedDropped  atomic.Int64 // access units skipped while waiting for a keyframe
	lastVideoUnix atomic.Int64 // ns of the last sample read from the video source
	stats         *transport.Stats
}

// videoGate decides which access units reach the track: nothing before
// the peer is connected, then only from a keyframe on, and again from the
// next keyframe after any loss (a hub drop, a gap in Seq, a failed write), so the
// receiver never gets a P-frame without its reference. It also computes each
// unit's RTP duration. Not safe for concurrent use; the pump owns it.
type videoGate struct {
	nominal     time.Duration // 1/fps, for the first unit and implausible deltas
	live        bool
	asked       bool // a keyframe was requested for the current gate
	lastDropped uint64
	lastSeq     uint64
	haveSeq     bool
	prev        time.Time
}

// admit says whether to write s and with which duration, and whether to ask
// the source for a keyframe now. dropped is the subscription's drop counter.
func (g *videoGate) admit(s sensors.Sample, connected bool, dropped uint64) (write bool, dur time.Duration, askKey bool) {
	if dropped != g.lastDropped {
		g.lastDropped = dropped
		g.live = false // a lost unit breaks the reference chain
	}
	if g.haveSeq && s.Seq != g.lastSeq+1 {
		g.live = false // the driver lost units (or the source restarted)
	}
	g.lastSeq, g.haveSeq = s.Seq, true
	if !connected {
		return false, 0, false
	}
	if !g.live {
		if !s.Keyframe {
			// The receiver needs an IDR to start: ask for one instead of
			// waiting out the source's GOP (once per gate).
			ask := !g.asked
			g.asked = true
			return false, 0, ask
		}
		g.live, g.asked = true, false
		g.prev = time.Time{}
	}
	// Durations from capture-time deltas keep RTP time with the wall clock.
	dur = s.Duration
	if dur <= 0 {
		dur = g.nominal
	}
	if !g.prev.IsZero() {
		if d := s.Time.Sub(g.prev); d > 0 && d < time.Second {
			dur = d
		}
	}
	g.prev = s.Time
	return true, dur, false
}

// writeFailed re-gates after a unit could not be written.
func (g *videoGate) writeFailed() { g.live = false }

// keyLimiter rate-limits forced IDRs: each one costs bitrate
// (docs/protocols/webrtc-rtm.md §6.1).
type keyLimiter struct {
	every time.Duration
	last  time.Time
}

func (k *keyLimiter) allow(now time.Time) bool {
	if !k.last.IsZero() && now.Sub(k.last) < k.every {
		return false
	}
	k.last = now
	return true
}

// videoPump writes access units from sub to track through a videoGate, and
// passes keyframe requests (PLI/FIR from keyReq, or the gate's own) to the
// source. Every unit the source sends goes through check first. now is the
// link's clock. It returns when ctx ends or sub closes. Owned by the session.
func videoPump(ctx context.Context, connected <-chan struct{}, sub sensors.Subscription,
	track *webrtc.TrackLocalStaticSample, keyReq <-chan struct{}, c *mediaCounters, check *videoCheck,
	log *slog.Logger, now func() time.Time) {
	info := sub.Info()
	gate := videoGate{nominal: time.Second / 15, lastDropped: sub.Dropped()}
	if info.Rate > 0 {
		gate.nominal = time.Duration(float64(time.Second) / info.Rate)
	}
	limit := keyLimiter{every: 500 * time.Millisecond}
	noControlLogged := false
	request := func() {
		if !limit.allow(now()) {
			return
		}
		if err := sub.RequestKeyframe(); err != nil {
			if errors.Is(err, sensors.ErrNoKeyframeControl) {
				if !noControlLogged {
					noControlLogged = true
					log.Info("video source cannot force a keyframe; the receiver waits for the source's keyframe interval", "sensor", info.Name)
				}
				return
			}
			log.Warn("keyframe request failed", "sensor", info.Name, "err", err)
			return
		}
		c.keyForced.Add(1)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-keyReq:
			request()
		case s, ok := <-sub.C():
			if !ok {
				return
			}
			c.lastVideoUnix.Store(now().UnixNano())
			check.add(s)
			isConnected := false
			select {
			case <-connected:
				isConnected = true
			default:
			}
			write, dur, ask := gate.admit(s, isConnected, sub.Dropped())
			if ask {
				request()
			}
			if !write {
				if isConnected {
					c.gatedDropped.Add(1)
				}
				continue
			}
			if err := track.WriteSample(media.Sample{Data: s.Data, Duration: dur, Timestamp: s.Time}); err != nil {
				gate.writeFailed()
				continue
			}
			c.videoFrames.Add(1)
			c.videoBytes.Add(int64(len(s.Data)))
			c.stats.BytesOut.Add(int64(len(s.Data)))
		}
	}
}

// audioPump encodes PCM from sub to 20 ms PCMU packets from connect on.
func audioPump(ctx context.Context, connected <-chan struct{}, sub sensors.Subscription,
	track *webrtc.TrackLocalStaticSample, c *mediaCounters) {
	info := sub.Info()
	rate := int(info.Rate)
	if rate <= 0 {
		rate = 16000
	}
	enc := newPCMUEncoder(rate, info.Channels)
	emit := func(pkt []byte) error {
		if err := track.WriteSample(media.Sample{Data: pkt, Duration: 20 * time.Millisecond}); err != nil {
			return err
		}
		c.audioPackets.Add(1)
		c.stats.BytesOut.Add(int64(len(pkt)))
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-sub.C():
			if !ok {
				return
			}
			select {
			case <-connected:
			default:
				continue
			}
			_ = enc.encode(s.Data, emit) // a closed track only drops audio
		}
	}
}
