package rtm

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/rtm/internal/pionapi"
)

// TestAnswerRefusingTheProfile: a browser whose decoders lack the offered
// profile answers the video section with port 0 (Debian's Chromium, decoding
// in software, does so for high profile, 64xxxx). The error names the
// offered format and the fix instead of pion's bare "codec is not supported
// by remote", and waits like any SDP the peer cannot take.
func TestAnswerRefusingTheProfile(t *testing.T) {
	fmtp := pionapi.H264Fmtp("64000c")
	p, err := newPeer(peerConfig{loopback: true, h264Fmtp: fmtp, audio: true, sdpErrorWait: time.Minute,
		counters: &mediaCounters{}, log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	offer, err := p.offer()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(offer.SDP, "profile-level-id=64000c") {
		t.Fatalf("offer does not announce 64000c:\n%s", offer.SDP)
	}
	answer := refuseVideo(t, *offer)
	_, err = p.apply(answer)
	if err == nil {
		t.Fatal("an answer refusing the video was applied")
	}
	if !strings.Contains(err.Error(), fmtp) || !strings.Contains(err.Error(), "encode constrained baseline") {
		t.Errorf("error %q, want the offered format and the fix named", err)
	}
	if d, ok := retry.After(err); !ok || d != time.Minute {
		t.Errorf("retry after %v (%v), want the SDP error wait", d, ok)
	}
}

// refuseVideo answers offer with a pion peer and then refuses the video
// section as Chromium does: port 0, payload type 0, no video attributes
// but the mid.
func refuseVideo(t *testing.T, offer webrtc.SessionDescription) webrtc.SessionDescription {
	t.Helper()
	api, err := pionapi.New(pionapi.Config{H264: pionapi.BrowserH264, Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if err := pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	video := false
	for line := range strings.Lines(ans.SDP) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "m=") {
			video = strings.HasPrefix(line, "m=video ")
			if video {
				line = "m=video 0 UDP/TLS/RTP/SAVPF 0"
			}
		} else if video && (strings.HasPrefix(line, "a=rtpmap:") || strings.HasPrefix(line, "a=fmtp:") ||
			strings.HasPrefix(line, "a=rtcp-fb:") || strings.HasPrefix(line, "a=ssrc")) {
			continue
		}
		out = append(out, line)
	}
	ans.SDP = strings.Join(out, "\r\n") + "\r\n"
	return ans
}
