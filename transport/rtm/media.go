package rtm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
)

// H264Fmtp is what the agent offers: constrained baseline, packetization
// mode 1 (WebRTC receivers drop B-frame streams; spec §7.2).
const H264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

// newAPI builds a pion API with only the codecs the agent can send (H.264
// and PCMU), the default interceptors (NACK, RTCP reports, TWCC) and mDNS
// off. loopback adds loopback host candidates: needed when the service runs
// on the same host (tests, `edge-agent demo`), never in production.
func newAPI(loopback bool, udpPorts [2]uint16) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: H264Fmtp, RTCPFeedback: []webrtc.RTCPFeedback{
				{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: 102,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("rtm media engine: %w", err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1},
		PayloadType:        0,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("rtm media engine: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("rtm interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if loopback {
		se.SetIncludeLoopbackCandidate(true)
	}
	if udpPorts[0] != 0 {
		if err := se.SetEphemeralUDPPortRange(udpPorts[0], udpPorts[1]); err != nil {
			return nil, fmt.Errorf("rtm udp ports: %w", err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

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

// videoPump writes access units from sub to track, starting at the first
// keyframe after connected is closed, and again after any loss (hub drops
// or a write error) so the receiver never gets a P-frame without its
// reference. It returns when ctx ends or sub closes. Owned by the session.
func videoPump(ctx context.Context, connected <-chan struct{}, sub sensors.Subscription,
	track *webrtc.TrackLocalStaticSample, keyReq <-chan struct{}, c *mediaCounters, log *slog.Logger) {
	info := sub.Info()
	nominal := time.Second / 15
	if info.Rate > 0 {
		nominal = time.Duration(float64(time.Second) / info.Rate)
	}
	live := false
	asked := false // a keyframe was requested for the current gate
	var prev time.Time
	lastDropped := sub.Dropped()
	var lastForce time.Time
	noControlLogged := false
	request := func() {
		// Rate-limit forced IDRs: each one costs bitrate (spec §7.2).
		if time.Since(lastForce) < 500*time.Millisecond {
			return
		}
		lastForce = time.Now()
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
			c.lastVideoUnix.Store(time.Now().UnixNano())
			select {
			case <-connected:
			default:
				continue // not connected yet: nothing to send to
			}
			if d := sub.Dropped(); d != lastDropped {
				lastDropped = d
				live = false // a lost unit breaks the reference chain
			}
			if !live {
				if !s.Keyframe {
					// The receiver needs an IDR to start: ask for one
					// instead of waiting out the source's GOP.
					if !asked {
						asked = true
						request()
					}
					c.gatedDropped.Add(1)
					continue
				}
				asked = false
				live = true
				prev = time.Time{}
			}
			// Duration from capture-time deltas keeps RTP time with the wall
			// clock; fall back to the nominal duration for the first unit
			// or an implausible delta.
			dur := s.Duration
			if dur <= 0 {
				dur = nominal
			}
			if !prev.IsZero() {
				if d := s.Time.Sub(prev); d > 0 && d < time.Second {
					dur = d
				}
			}
			prev = s.Time
			if err := track.WriteSample(media.Sample{Data: s.Data, Duration: dur, Timestamp: s.Time}); err != nil {
				live = false
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

// rtcpReader drains RTCP from one sender (the interceptors need it read) and
// turns PLI/FIR into a keyframe request. keyReq is a 1-slot signal: requests
// that arrive while one is pending merge.
func rtcpReader(sender *webrtc.RTPSender, keyReq chan<- struct{}, c *mediaCounters) {
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return // the sender was closed with the peer connection
		}
		if keyReq == nil {
			continue
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.keyRequests.Add(1)
				select {
				case keyReq <- struct{}{}:
				default:
				}
			}
		}
	}
}
