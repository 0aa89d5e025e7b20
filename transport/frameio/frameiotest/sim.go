package frameiotest

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/frameio"
)

// Sim is the fake as a transport.SimService for `edge-agent sim` and `demo`.
type Sim struct{ *Server }

// NewSim starts the fake on listen (e.g. "127.0.0.1:0") for `edge-agent sim`
// and `edge-agent demo`. Pairing codes are approved after two polls, so
// `edge-agent pair` against it shows the whole flow.
func NewSim(listen string, logger *slog.Logger) (transport.SimService, error) {
	s, err := New(Options{Listen: listen, Logger: logger, AutoApprove: 2, Interval: 2})
	if err != nil {
		return nil, err
	}
	return &Sim{s}, nil
}

// Kind is "frameio".
func (s *Sim) Kind() string { return "frameio" }

// URLs lists the API, socket and status page.
func (s *Sim) URLs() map[string]string {
	return map[string]string{"api": s.URL(), "socket": s.SocketURL(), "status": s.URL() + "/"}
}

// DemoLink returns a config pointing at the fake, already paired: the
// client secret and a token file are written 0600 into secretDir. Stills
// from `cam` become assets every 10 s.
func (s *Sim) DemoLink(secretDir string) (any, error) {
	secret := filepath.Join(secretDir, "frameio-client-secret")
	if err := os.WriteFile(secret, []byte(s.ClientSecret()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("frameio demo: %w", err)
	}
	access, refresh, exp := s.IssueTokens()
	now := time.Now().UTC()
	tokens := filepath.Join(secretDir, "frameio-tokens.json")
	if err := frameio.SaveTokens(tokens, &frameio.Tokens{AccessToken: access, RefreshToken: refresh, TokenType: "bearer",
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(exp) * time.Second)}); err != nil {
		return nil, fmt.Errorf("frameio demo: %w", err)
	}
	return &frameio.Config{APIURL: s.URL(), SocketURL: s.SocketURL(), ClientID: s.ClientID(),
		ClientSecretFile: secret, TokenFile: tokens,
		Upload: frameio.Upload{Sensor: "cam", Every: conf.Duration(10 * time.Second)}}, nil
}
