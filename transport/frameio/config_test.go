package frameio_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/transport/frameio"
)

func TestConfigValidate(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(c *frameio.Config)
		want string // substring of the problems, "" for valid
	}{
		{name: "valid", mod: func(c *frameio.Config) {}},
		{name: "no client id", mod: func(c *frameio.Config) { c.ClientID = "" }, want: "client_id: required"},
		{name: "no secret", mod: func(c *frameio.Config) { c.ClientSecretFile = "" }, want: "client_secret_file: required"},
		{name: "bad socket scheme", mod: func(c *frameio.Config) { c.SocketURL = "https://x/devices/websocket" }, want: "socket_url"},
		{name: "every without sensor", mod: func(c *frameio.Config) { c.Upload.Every = conf.Duration(5 * time.Second) }, want: "upload.sensor"},
		{name: "every too short", mod: func(c *frameio.Config) {
			c.Upload.Sensor, c.Upload.Every = "cam", conf.Duration(10*time.Millisecond)
		}, want: "upload.every"},
		{name: "parallel out of range", mod: func(c *frameio.Config) { c.Upload.Parallel = 99 }, want: "upload.parallel"},
		{name: "negative channel", mod: func(c *frameio.Config) { c.Channel = -1 }, want: "channel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := frameio.Config{ClientID: "dev", ClientSecretFile: secret}
			c.SetDefaults()
			tc.mod(&c)
			v := conf.NewValidator()
			c.Validate(v)
			var got []string
			for _, p := range v.Problems() {
				got = append(got, p.Path+": "+p.Msg)
			}
			all := strings.Join(got, "; ")
			if tc.want == "" {
				if len(got) > 0 {
					t.Fatalf("problems: %s", all)
				}
				if c.ClientSecret != "s3cr3t" {
					t.Errorf("secret not resolved from the file")
				}
				return
			}
			if !strings.Contains(all, tc.want) {
				t.Errorf("problems %q lack %q", all, tc.want)
			}
		})
	}
}
