package conf_test

import (
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512", 512, true}, {"64KiB", 64 << 10, true}, {"256MiB", 256 << 20, true}, {"1GiB", 1 << 30, true},
		{"10MB", 10e6, true}, {"1.5KiB", 1536, true}, {" 2 GiB ", 2 << 30, true},
		{"", 0, false}, {"-1MiB", 0, false}, {"lots", 0, false}, {"1e400", 0, false},
	}
	for _, tt := range tests {
		got, err := conf.ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v", tt.in, got, err)
		}
	}
	if s := conf.Size(256 << 20).String(); s != "256MiB" {
		t.Errorf("String = %s", s)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"400ms", 400 * time.Millisecond, true}, {"5m", 5 * time.Minute, true}, {"0", 0, true},
		{"-1s", 0, false}, {"5", 0, false}, {"soon", 0, false},
	}
	for _, tt := range tests {
		got, err := conf.ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestValidatorPaths(t *testing.T) {
	v := conf.NewValidator()
	l := v.At("links[1]").At("rtm")
	l.Required("url", "")
	l.At("ice_servers").At("[0]").Errorf("urls", "required")
	l.URL("api_url", "ftp://x", true, "http", "https")
	p := v.Problems()
	want := []string{"links[1].rtm.url", "links[1].rtm.ice_servers[0].urls", "links[1].rtm.api_url"}
	if len(p) != len(want) {
		t.Fatalf("problems = %+v", p)
	}
	for i := range want {
		if p[i].Path != want[i] {
			t.Errorf("path %d = %q, want %q", i, p[i].Path, want[i])
		}
	}
}
