package rtmtest

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/edge-agent/edge-agent/sensors/h264"
)

// h264Formats returns the H.264 formats of an SDP's video sections:
// payload type → fmtp line ("" when the format has none), and the payload
// types in the order the m= lines list them.
func h264Formats(sdp string) (map[uint8]string, []uint8) {
	fmtps, isH264 := map[uint8]string{}, map[uint8]bool{}
	var order []uint8
	video := false
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		if m, ok := strings.CutPrefix(line, "m="); ok {
			video = strings.HasPrefix(m, "video ")
			continue
		}
		if !video {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "a=rtpmap:"); ok {
			pt, codec, _ := strings.Cut(rest, " ")
			if n, err := strconv.ParseUint(pt, 10, 8); err == nil && strings.HasPrefix(strings.ToUpper(codec), "H264/") {
				isH264[uint8(n)] = true
				order = append(order, uint8(n))
			}
		}
		if rest, ok := strings.CutPrefix(line, "a=fmtp:"); ok {
			pt, params, _ := strings.Cut(rest, " ")
			if n, err := strconv.ParseUint(pt, 10, 8); err == nil {
				fmtps[uint8(n)] = params
			}
		}
	}
	out := map[uint8]string{}
	for pt := range isH264 {
		out[pt] = fmtps[pt]
	}
	return out, order
}

// announcedSPS reads the profile-level-id of an fmtp line into the SPS
// fields it announces; without one RFC 6184 §8.1 means 420010 (baseline,
// level 1).
func announcedSPS(fmtp string) (h264.SPS, error) {
	id := "420010"
	for p := range strings.SplitSeq(fmtp, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "profile-level-id="); ok {
			id = v
		}
	}
	return h264.ParseProfileLevelID(strings.ToLower(id))
}

// checkOffer records the offer's H.264 formats and reports whether a
// browser would take one of them: one whose profile it negotiates
// (h264.BrowserProfile). A browser
// answers an offer of none with the video refused, which the service takes
// as an SDP it cannot process.
func (fs *fakeSession) checkOffer(sdp string) bool {
	formats, order := h264Formats(sdp)
	fs.mu.Lock()
	fs.offered = formats
	if len(order) > 0 {
		fs.info_.VideoFmtp = formats[order[0]]
	}
	fs.mu.Unlock()
	var refused []string
	for _, pt := range order {
		a, err := announcedSPS(formats[pt])
		if err == nil && h264.BrowserProfile(a.Profile()) {
			return true
		}
		refused = append(refused, fmt.Sprintf("%d %q", pt, formats[pt]))
	}
	fs.mediaError(fmt.Sprintf("the offer has no H.264 format a browser decodes (%s)", strings.Join(refused, ", ")))
	return false
}

// checkSPS compares an SPS that arrived on payload type pt with what the
// offer announced for pt, as a browser's decoder set up from the SDP would:
// the same profile, at most the announced level.
func (fs *fakeSession) checkSPS(pt uint8, nal []byte) {
	sps, err := h264.ParseSPS(nal)
	if err != nil {
		fs.mediaError(fmt.Sprintf("an SPS on payload type %d does not parse: %v", pt, err))
		return
	}
	fs.mu.Lock()
	fs.info_.StreamProfileLevelID = sps.ProfileLevelID()
	fmtp, ok := fs.offered[pt]
	fs.mu.Unlock()
	if !ok {
		fs.mediaError(fmt.Sprintf("H.264 on payload type %d, which the offer did not announce as H.264", pt))
		return
	}
	a, err := announcedSPS(fmtp)
	if err != nil {
		fs.mediaError(fmt.Sprintf("payload type %d: %v", pt, err))
		return
	}
	if sps.Profile() != a.Profile() || sps.LevelIDC > a.LevelIDC {
		fs.mediaError(fmt.Sprintf("the stream's SPS is %s (%s %s) but the offer announced %s (%s %s)",
			sps.ProfileLevelID(), sps.Profile(), sps.Level(), a.ProfileLevelID(), a.Profile(), a.Level()))
	}
}

// mediaError records msg once per session.
func (fs *fakeSession) mediaError(msg string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if slices.Contains(fs.info_.MediaErrors, msg) {
		return
	}
	fs.info_.MediaErrors = append(fs.info_.MediaErrors, msg)
	fs.log.Warn("rtm fake: a browser would refuse this", "session", fs.info_.ID, "err", msg)
}

// spsIn returns the SPS NAL unit an H.264 RTP payload carries, alone or
// first-level in a STAP-A (RFC 6184 §5.6, §5.7.1), or nil.
func spsIn(p []byte) []byte {
	if len(p) < 2 {
		return nil
	}
	switch h264.NALType(p) {
	case h264.NALSPS:
		return p
	case 24: // STAP-A: 16-bit sizes, each followed by a NAL unit
		for b := p[1:]; len(b) >= 2; {
			n := int(binary.BigEndian.Uint16(b))
			if n == 0 || len(b) < 2+n {
				return nil
			}
			if nal := b[2 : 2+n]; h264.NALType(nal) == h264.NALSPS {
				return nal
			}
			b = b[2+n:]
		}
	}
	return nil
}
