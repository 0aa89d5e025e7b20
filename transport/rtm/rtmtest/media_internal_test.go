package rtmtest

import (
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/transport/rtm/internal/pionapi"
)

// clipSPS is the SPS of testdata/media/testsrc-320x240-15fps-4s.h264:
// constrained baseline, level 1.2 (42c00c), 320x240.
func clipSPS(t *testing.T) []byte {
	t.Helper()
	b, err := hex.DecodeString("6742c00cd90141fb0110000003001000000301e0f142a480")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestH264Formats(t *testing.T) {
	sdp := strings.Join([]string{
		"v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=rtpmap:0 PCMU/8000",
		"m=video 9 UDP/TLS/RTP/SAVPF 96 102 104", "a=rtpmap:96 VP8/90000",
		"a=rtpmap:102 H264/90000", "a=fmtp:102 " + pionapi.H264Fmtp("640c1f"),
		"a=rtpmap:104 h264/90000", "a=rtcp-fb:104 nack", "",
	}, "\r\n")
	formats, order := h264Formats(sdp)
	if !slices.Equal(order, []uint8{102, 104}) || len(formats) != 2 ||
		formats[102] != pionapi.H264Fmtp("640c1f") || formats[104] != "" {
		t.Fatalf("formats %q order %v, want 102 with its fmtp and 104 without", formats, order)
	}
	a, err := announcedSPS(formats[104])
	if err != nil || a.ProfileLevelID() != "420010" {
		t.Errorf("no profile-level-id: %s, %v; want RFC 6184's default 420010", a.ProfileLevelID(), err)
	}
}

func TestSPSIn(t *testing.T) {
	sps := clipSPS(t)
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	stap := func(nals ...[]byte) []byte {
		out := []byte{0x18}
		for _, n := range nals {
			out = append(out, byte(len(n)>>8), byte(len(n)))
			out = append(out, n...)
		}
		return out
	}
	tests := []struct {
		name    string
		payload []byte
		want    []byte
	}{
		{"single SPS", sps, sps},
		{"STAP-A with SPS and PPS", stap(sps, pps), sps},
		{"STAP-A with PPS then SPS", stap(pps, sps), sps},
		{"STAP-A without SPS", stap(pps), nil},
		{"STAP-A cut short", stap(sps, pps)[:10], nil},
		{"FU-A", []byte{0x7c, 0x85, 1, 2, 3}, nil},
		{"IDR", []byte{0x65, 0x88}, nil},
		{"empty", nil, nil},
	}
	for _, tc := range tests {
		if got := spsIn(tc.payload); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %x, want %x", tc.name, got, tc.want)
		}
	}
}

// TestCheckSPS: the fake compares each SPS with the format the offer
// announced for its payload type as a browser's decoder set up from the SDP
// would, and records each distinct refusal once.
func TestCheckSPS(t *testing.T) {
	tests := []struct {
		name      string
		announced string // profile-level-id for payload type 102
		pt        uint8
		sps       []byte
		want      string // substring of the one error; "" for none
	}{
		{"same profile, lower level", "42e01f", 102, clipSPS(t), ""},
		{"exactly as announced", "42c00c", 102, clipSPS(t), ""},
		{"another profile", "4d001f", 102, clipSPS(t), "42c00c (constrained baseline 1.2) but the offer announced 4d001f (main 3.1)"},
		{"a higher level", "42e00b", 102, clipSPS(t), "but the offer announced 42e00b (constrained baseline 1.1)"},
		{"a payload type not announced", "42e01f", 110, clipSPS(t), "payload type 110, which the offer did not announce"},
		{"an SPS that does not parse", "42e01f", 102, []byte{0x67, 0x42}, "does not parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeSession{log: slog.New(slog.DiscardHandler), offered: map[uint8]string{102: pionapi.H264Fmtp(tc.announced)}}
			fs.checkSPS(tc.pt, tc.sps)
			fs.checkSPS(tc.pt, tc.sps) // a repeat is not a second error
			errs := fs.info().MediaErrors
			if tc.want == "" {
				if len(errs) != 0 {
					t.Errorf("errors %q, want none", errs)
				}
				if got := fs.info().StreamProfileLevelID; got != "42c00c" {
					t.Errorf("stream profile-level-id %q, want 42c00c", got)
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Errorf("errors %q, want one containing %q", errs, tc.want)
			}
		})
	}
}

func TestCheckOffer(t *testing.T) {
	offer := func(ids ...string) string {
		lines := []string{"v=0", "m=video 9 UDP/TLS/RTP/SAVPF 102 104"}
		for i, id := range ids {
			pt := []string{"102", "104"}[i]
			lines = append(lines, "a=rtpmap:"+pt+" H264/90000", "a=fmtp:"+pt+" "+pionapi.H264Fmtp(id))
		}
		return strings.Join(lines, "\r\n") + "\r\n"
	}
	tests := []struct {
		name string
		sdp  string
		ok   bool
	}{
		{"constrained baseline", offer("42c00c"), true},
		{"high", offer("64001f"), true},
		{"4:4:4 only", offer("f4001f"), false},
		{"progressive high only", offer("640828"), false},
		{"4:4:4 and main", offer("f4001f", "4d001f"), true},
		{"no H.264", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", false},
	}
	for _, tc := range tests {
		fs := &fakeSession{log: slog.New(slog.DiscardHandler)}
		if got := fs.checkOffer(tc.sdp); got != tc.ok {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.ok)
		}
		if errs := fs.info().MediaErrors; (len(errs) == 0) != tc.ok {
			t.Errorf("%s: errors %q", tc.name, errs)
		}
	}
}
