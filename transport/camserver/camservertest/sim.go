package camservertest

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/camserver"
)

// Sim is the fake as a transport.SimService for `edge-agent sim` and `demo`:
// a TLS server (the demo link trusts its certificate through ca_file) with
// the maintenance passes running at the real server's 10 s period.
type Sim struct{ *Server }

// NewSim starts the fake on listen (e.g. "127.0.0.1:0").
func NewSim(listen string, logger *slog.Logger) (transport.SimService, error) {
	s, err := New(listen, Options{TLS: true, Logger: logger, MaintenanceEvery: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	return &Sim{s}, nil
}

// Kind is "camserver".
func (s *Sim) Kind() string { return "camserver" }

// URLs lists the API base and the status JSON.
func (s *Sim) URLs() map[string]string {
	return map[string]string{"api": s.URL(), "status": s.URL() + "/status"}
}

// DemoUser and DemoPassword are the fake's account.
const (
	DemoUser     = "demo"
	DemoPassword = "demo-pass"
)

// DemoLink returns a link block pointing at the fake, streaming the `cam`
// sensor; the password and the CA certificate are written to secretDir.
func (s *Sim) DemoLink(secretDir string) (any, error) {
	pw := filepath.Join(secretDir, "camserver-password")
	if err := atomicfile.WriteFile(pw, []byte(DemoPassword+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("camserver demo: %w", err)
	}
	ca := filepath.Join(secretDir, "camserver-ca.pem")
	if err := os.WriteFile(ca, s.CAPEM(), 0o644); err != nil {
		return nil, fmt.Errorf("camserver demo: %w", err)
	}
	return &camserver.Config{
		URL: s.URL(), CAFile: ca, User: DemoUser, PasswordFile: pw,
		Stream: camserver.Stream{Sensor: "cam", Subproto: camserver.SubprotoRawJPEG, Delta: conf.Duration(400 * time.Millisecond)},
	}, nil
}
