package rtmtest

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/edge-agent/edge-agent/internal/atomicfile"

	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/rtm"
)

// Sim is the fake as a transport.SimService for `edge-agent sim` and `demo`.
type Sim struct{ *Server }

// NewSim starts the fake on listen (e.g. "127.0.0.1:0") for `edge-agent sim`
// and `edge-agent demo`. It logs what it receives at info.
func NewSim(listen string, logger *slog.Logger) (transport.SimService, error) {
	s, err := New(listen, Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	return &Sim{Server: s}, nil
}

// Kind is "rtm".
func (s *Sim) Kind() string { return "rtm" }

// URLs lists the endpoints.
func (s *Sim) URLs() map[string]string {
	return map[string]string{
		"ws":     s.WSURL(),
		"api":    s.APIURL(),
		"token":  s.TokenURL(),
		"upload": s.UploadURL(""),
		"status": "http://" + s.Addr() + "/status",
	}
}

// DemoLink returns an rtm block pointing at the fake: the demo's `video`
// (H.264) and `mic` sensors, auto recording uploaded back to the fake. The
// token comes from the fake's token endpoint (standing for our backend) with
// the device key kept in a 0600 file in secretDir.
func (s *Sim) DemoLink(secretDir string) (any, error) {
	path := filepath.Join(secretDir, "rtm-device-key")
	if err := atomicfile.WriteFile(path, []byte(s.DeviceKey()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("rtm fake: write device key: %w", err)
	}
	return &rtm.Config{
		URL:             s.WSURL(),
		TokenURL:        s.TokenURL(),
		TokenURLKeyFile: path,
		ClientID:        "demo-device",
		Video:           "video",
		Audio:           "mic",
		Record:          rtm.Record{UploadURL: s.UploadURL("demo.h264"), Start: "auto"},
	}, nil
}
