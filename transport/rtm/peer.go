package rtm

import (
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/retry"
)

// peerMedia is what setupPeer made: the tracks the pumps write to, their
// transceivers (whose senders carry RTCP) and the PLI/FIR signal.
type peerMedia struct {
	vtrack, atrack *webrtc.TrackLocalStaticSample
	vtr, atr       *webrtc.RTPTransceiver // atr is nil without audio
	keyReq         chan struct{}          // 1 slot: requests pending together merge
}

// setupPeer creates the session's peer connection with sendonly H.264 (and
// PCMU when audio) transceivers, and routes pion's callbacks to the event
// loop through bounded channels: callbacks never block pion.
func (s *session) setupPeer(ice []webrtc.ICEServer, loopback, audio bool) (pm peerMedia, err error) {
	api, err := newAPI(loopback, s.l.opts.UDPPortRange)
	if err != nil {
		return pm, retry.Permanent(err)
	}
	s.pc, err = api.NewPeerConnection(webrtc.Configuration{ICEServers: ice})
	if err != nil {
		return pm, fmt.Errorf("rtm peer connection: %w", err)
	}
	pm.vtrack, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: H264Fmtp}, "video", "edge-agent")
	if err != nil {
		return pm, fmt.Errorf("rtm video track: %w", err)
	}
	pm.vtr, err = s.pc.AddTransceiverFromTrack(pm.vtrack, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return pm, fmt.Errorf("rtm video transceiver: %w", err)
	}
	pm.keyReq = make(chan struct{}, 1)
	if audio {
		pm.atrack, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, "audio", "edge-agent")
		if err != nil {
			return pm, fmt.Errorf("rtm audio track: %w", err)
		}
		pm.atr, err = s.pc.AddTransceiverFromTrack(pm.atrack, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return pm, fmt.Errorf("rtm audio transceiver: %w", err)
		}
	}
	s.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return // end of gathering: the protocol has no message for it
		}
		select {
		case s.localCand <- c.ToJSON():
		default:
			s.candDrops.Add(1)
		}
	})
	s.pc.OnConnectionStateChange(func(webrtc.PeerConnectionState) {
		select {
		case s.pcNotify <- struct{}{}:
		default: // a notification is pending; run reads the current state
		}
	})

	return pm, nil
}
