// Package pionapi builds the pion API of both ends of an RTM session: the
// link's offering peer (transport/rtm) and the fake service's answering one
// (transport/rtm/rtmtest), so the two register the same payload types,
// feedback and interceptors.
package pionapi

import (
	"fmt"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// H264Fmtp returns the fmtp line of an H.264 format with profileLevelID
// (six hex digits, RFC 6184 §8.1), packetization mode 1 and level
// asymmetry allowed: what the link offers for the stream its camera really
// sends (docs/protocols/webrtc-rtm.md §6.1).
func H264Fmtp(profileLevelID string) string {
	return "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profileLevelID
}

// FallbackProfileLevelID is what the link announces when the camera sent no
// SPS in time: constrained baseline, level 3.1, the profile every browser
// decodes.
const FallbackProfileLevelID = "42e01f"

// BrowserH264 are the H.264 formats the fake service answers with: every
// profile libwebrtc negotiates (constrained baseline, baseline, main,
// constrained high, high), at level 3.1 with level asymmetry allowed and
// packetization mode 1, as a browser with hardware decoding offers them.
// A browser decoding in software takes fewer (Chromium: no high;
// docs/protocols/webrtc-rtm.md §6.1).
var BrowserH264 = []string{
	H264Fmtp("42e01f"), H264Fmtp("42001f"), H264Fmtp("4d001f"), H264Fmtp("640c1f"), H264Fmtp("64001f"),
}

// Config is what an API is built for.
type Config struct {
	// H264 are the fmtp lines of the H.264 formats to offer or accept, in
	// order of preference, one payload type each (102, 104, …). The link
	// gives one: its stream's.
	H264 []string
	// Loopback adds loopback host candidates: needed when the service runs
	// on the same host (tests, the fake, `edge-agent demo`), never in
	// production.
	Loopback bool
	// UDPPorts limits the ephemeral ICE ports (0,0 = any).
	UDPPorts [2]uint16
}

// New builds a pion API with only the codecs the agent can send (the H.264
// formats of cfg and PCMU), the default interceptors (NACK, RTCP reports,
// TWCC) and mDNS off (docs/protocols/webrtc-rtm.md §6.3). Safe for
// concurrent use: each call builds its own engines.
func New(cfg Config) (*webrtc.API, error) {
	if len(cfg.H264) == 0 || len(cfg.H264) > 12 {
		return nil, fmt.Errorf("rtm media engine: %d H.264 formats, want 1 to 12", len(cfg.H264))
	}
	m := &webrtc.MediaEngine{}
	for i, fmtp := range cfg.H264 {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine: fmtp, RTCPFeedback: []webrtc.RTCPFeedback{
					{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
			PayloadType: webrtc.PayloadType(102 + 2*i),
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("rtm media engine: %w", err)
		}
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
	if cfg.Loopback {
		se.SetIncludeLoopbackCandidate(true)
	}
	if cfg.UDPPorts[0] != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPorts[0], cfg.UDPPorts[1]); err != nil {
			return nil, fmt.Errorf("rtm udp ports: %w", err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}
