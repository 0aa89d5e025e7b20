package main

import (
	"testing"

	"github.com/edge-agent/edge-agent/sensors/v4l2"
)

// The table shows what a camera can be configured for and counts the rest
// (vivid lists 86 raw formats; the line was unreadable).
func TestFormatFormatsShowsUsableFormats(t *testing.T) {
	for _, tc := range []struct {
		in   []v4l2.FormatInfo
		want string
	}{
		{[]v4l2.FormatInfo{{FourCC: "MJPG", Sizes: []string{"640x480"}}, {FourCC: "YUYV", Sizes: []string{"320x240", "640x480"}}},
			"MJPG 640x480; YUYV 320x240,640x480"},
		{[]v4l2.FormatInfo{{FourCC: "NV12"}, {FourCC: "YUYV", Sizes: []string{"a", "b", "c", "d", "e", "f", "g"}}, {FourCC: "RGB3"}},
			"YUYV a,b,c,d,e,…+2; +2 other formats"},
		{[]v4l2.FormatInfo{{FourCC: "NV12"}, {FourCC: "GREY"}}, "none usable (2 other formats)"},
		{nil, ""},
	} {
		if got := formatFormats(tc.in); got != tc.want {
			t.Errorf("formatFormats(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
