package v4l2

import (
	"errors"
	"testing"
)

func TestChoose(t *testing.T) {
	cam := []Format{
		{FourCC: FourCCYUYV, Width: 640, Height: 480},
		{FourCC: FourCCYUYV, Width: 1280, Height: 720},
		{FourCC: FourCCMJPEG, Width: 320, Height: 240},
		{FourCC: FourCCMJPEG, Width: 640, Height: 480},
		{FourCC: FourCCMJPEG, Width: 1920, Height: 1080},
		{FourCC: FourCCH264, Width: 1920, Height: 1080},
	}
	tests := []struct {
		name    string
		cfg     Config
		offered []Format
		want    Format
		wantErr error
	}{
		{name: "auto prefers MJPEG at 640x480", cfg: Config{Format: "auto", FPS: 15}, offered: cam,
			want: Format{FourCC: FourCCMJPEG, Width: 640, Height: 480, FPS: 15}},
		{name: "explicit yuyv nearest size", cfg: Config{Format: "yuyv", Width: 1024, Height: 600, FPS: 10}, offered: cam,
			want: Format{FourCC: FourCCYUYV, Width: 1280, Height: 720, FPS: 10}},
		{name: "exact size", cfg: Config{Format: "mjpeg", Width: 1920, Height: 1080, FPS: 30}, offered: cam,
			want: Format{FourCC: FourCCMJPEG, Width: 1920, Height: 1080, FPS: 30}},
		{name: "h264 only when asked", cfg: Config{Format: "h264", FPS: 30}, offered: cam,
			want: Format{FourCC: FourCCH264, Width: 1920, Height: 1080, FPS: 30}},
		{name: "auto falls back to yuyv", cfg: Config{Format: "auto", FPS: 5}, offered: cam[:2],
			want: Format{FourCC: FourCCYUYV, Width: 640, Height: 480, FPS: 5}},
		{name: "auto never picks h264", cfg: Config{Format: "auto"}, offered: cam[5:], wantErr: ErrNoFormat},
		{name: "format not offered", cfg: Config{Format: "h264"}, offered: cam[:2], wantErr: ErrNoFormat},
		{name: "size beyond every offered size", cfg: Config{Format: "yuyv", Width: 1920, Height: 1080}, offered: cam,
			wantErr: ErrNoSize},
		{name: "taller than any offered size", cfg: Config{Format: "mjpeg", Width: 640, Height: 1200}, offered: cam,
			wantErr: ErrNoSize},
		{name: "auto skips a format that cannot do the size", cfg: Config{Format: "auto", Width: 1280, Height: 720},
			offered: append([]Format{{FourCC: FourCCMJPEG, Width: 640, Height: 480}}, cam[:2]...),
			want:    Format{FourCC: FourCCYUYV, Width: 1280, Height: 720}},
		{name: "no sizes listed keeps the request", cfg: Config{Format: "mjpeg", Width: 800, Height: 600},
			offered: []Format{{FourCC: FourCCMJPEG}}, want: Format{FourCC: FourCCMJPEG, Width: 800, Height: 600}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := choose(tc.cfg, tc.offered)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFourCCString(t *testing.T) {
	for fc, want := range map[FourCC]string{FourCCMJPEG: "MJPG", FourCCYUYV: "YUYV", FourCCH264: "H264", 0: "????"} {
		if got := fc.String(); got != want {
			t.Errorf("%#x: got %q, want %q", uint32(fc), got, want)
		}
	}
}
