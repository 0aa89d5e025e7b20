package rtm

import (
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/conf/conftest"
)

func TestSampleConfig(t *testing.T) {
	var c Config
	conftest.Check(t, "testdata/sample.yaml", &c)
	if c.Token != "sample-token" || len(c.ICEServers) != 2 || c.Record.Start != "auto" {
		t.Errorf("decoded %+v", c)
	}
	if c.VideoChecks.MaxKeyframeInterval.D() != 3*time.Second {
		t.Errorf("video_checks.max_keyframe_interval = %v, want the sample's 3s", c.VideoChecks.MaxKeyframeInterval)
	}
	if got := c.SensorNames(); got["video"] != "cam" || got["audio"] != "mic" {
		t.Errorf("SensorNames = %v", got)
	}
}

func TestValidate(t *testing.T) {
	base := func() Config {
		c := Config{URL: "wss://x/api/v2/io", Token: "t", ClientID: "c", Video: "cam"}
		c.SetDefaults()
		return c
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // substrings of the problems, in any order
	}{
		{name: "valid", mutate: func(c *Config) {}},
		{name: "no url", mutate: func(c *Config) { c.URL = "" }, want: []string{"url: required"}},
		{name: "http url", mutate: func(c *Config) { c.URL = "http://x" }, want: []string{"url: scheme"}},
		{name: "api_url instead of url", mutate: func(c *Config) { c.URL, c.APIURL = "", "https://api.example.com" }},
		{name: "api_url must be http", mutate: func(c *Config) { c.APIURL = "wss://x" }, want: []string{"api_url: scheme"}},
		{name: "no token", mutate: func(c *Config) { c.Token = "" }, want: []string{"token_file: required"}},
		{name: "token and token_file", mutate: func(c *Config) { c.TokenFile = "testdata/token" }, want: []string{"not both"}},
		{name: "token_url with a key", mutate: func(c *Config) {
			c.Token, c.TokenURL, c.TokenURLKeyFile = "", "https://backend/rtm-token", "testdata/token"
		}},
		{name: "token_url and token", mutate: func(c *Config) { c.TokenURL, c.TokenURLKey = "https://backend/rtm-token", "k" }, want: []string{"token_url: give either"}},
		{name: "token_url without a key", mutate: func(c *Config) { c.Token, c.TokenURL = "", "https://backend/rtm-token" }, want: []string{"token_url_key_file: required"}},
		{name: "token_url not http", mutate: func(c *Config) { c.Token, c.TokenURL, c.TokenURLKey = "", "wss://backend", "k" }, want: []string{"token_url: scheme"}},
		{name: "negative keyframe interval", mutate: func(c *Config) { c.VideoChecks.MaxKeyframeInterval = -1 }, want: []string{"video_checks.max_keyframe_interval"}},
		{name: "negative refresh", mutate: func(c *Config) { c.TokenRefreshBefore = -1 }, want: []string{"token_refresh_before"}},
		{name: "no client id, no video", mutate: func(c *Config) { c.ClientID, c.Video = "", "" }, want: []string{"client_id: required", "video: required"}},
		{name: "bad record.start", mutate: func(c *Config) { c.Record.Start = "sometimes" }, want: []string{"record.start"}},
		{name: "bad upload url", mutate: func(c *Config) { c.Record.UploadURL = "ftp://x/y" }, want: []string{"record.upload_url"}},
		{name: "ice server without urls", mutate: func(c *Config) { c.ICEServers = []ICEServer{{}} }, want: []string{"ice_servers[0].urls: required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(&c)
			v := conf.NewValidator()
			c.Validate(v)
			var got []string
			for _, p := range v.Problems() {
				got = append(got, p.Path+": "+p.Msg)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("no problem matching %q in %q", w, got)
				}
			}
		})
	}
}
