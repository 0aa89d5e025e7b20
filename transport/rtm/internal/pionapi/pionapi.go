// Package pionapi builds the pion API of both ends of an RTM session: the
// link's offering peer (transport/rtm) and the fake service's answering one
// (transport/rtm/rtmtest), so the two register the same codecs, payload
// types and interceptors.
package pionapi

import (
	"fmt"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// H264Fmtp is what the agent offers: constrained baseline, packetization
// mode 1 (WebRTC receivers drop B-frame streams;
// docs/protocols/webrtc-rtm.md §6.1).
const H264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

// New builds a pion API with only the codecs the agent can send (H.264
// and PCMU), the default interceptors (NACK, RTCP reports, TWCC) and mDNS
// off (docs/protocols/webrtc-rtm.md §6.3). loopback adds loopback host
// candidates: needed when the service runs on the same host (tests, the
// fake, `edge-agent demo`), never in production. udpPorts limits the
// ephemeral ICE ports (0,0 = any). Safe for concurrent use: each call builds
// its own engines.
func New(loopback bool, udpPorts [2]uint16) (*webrtc.API, error) {
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
