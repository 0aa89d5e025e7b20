package eitest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
)

// Sim is the fake as a transport.SimService for `edge-agent sim` and
// `edge-agent demo`. Playing Studio, it asks the connected device for a
// sample every AutoSample period, cycling through the offered sensors, so a
// demo user sees samples arrive (in the log and on /status) without clicking.
type Sim struct {
	*Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// simHistory bounds what the sim remembers (Options.MaxHistory): a day of
// demo at one sample per 15 s is ~30 000 messages.
const simHistory = 2000

// AutoSample is the period between scripted sample requests in the sim.
const AutoSample = 15 * time.Second

// NewSim starts the fake on listen (e.g. "127.0.0.1:0").
func NewSim(listen string, logger *slog.Logger) (transport.SimService, error) {
	return newSim(listen, logger, AutoSample)
}

func newSim(listen string, logger *slog.Logger, every time.Duration) (*Sim, error) {
	srv, err := New(Options{Listen: listen, Logger: logger, MaxHistory: simHistory})
	if err != nil {
		return nil, fmt.Errorf("edgeimpulse fake: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{Server: srv, cancel: cancel}
	if every > 0 {
		s.wg.Go(func() { s.autoSample(ctx, every) })
	}
	return s, nil
}

// Kind is "edgeimpulse".
func (s *Sim) Kind() string { return "edgeimpulse" }

// URLs lists the endpoints.
func (s *Sim) URLs() map[string]string {
	return map[string]string{
		"remote_mgmt": s.WSURL(),
		"ingestion":   s.IngestionURL(),
		"studio":      s.IngestionURL(),
		"status":      s.IngestionURL() + "/status",
	}
}

// DemoLink writes the API key to a 0600 file in secretDir and returns a
// config block pointing at the fake, offering the demo's accel, mic and cam.
func (s *Sim) DemoLink(secretDir string) (any, error) {
	keyFile := filepath.Join(secretDir, "edgeimpulse-api-key")
	if err := atomicfile.WriteFile(keyFile, []byte(s.APIKey()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("edgeimpulse fake: write key: %w", err)
	}
	return &edgeimpulse.Config{
		APIKeyFile:    keyFile,
		RemoteMgmtURL: s.WSURL(),
		IngestionURL:  s.IngestionURL(),
		StudioURL:     s.IngestionURL(),
		Encoding:      "json",
		Sensors:       []string{"accel", "mic", "cam"},
	}, nil
}

// Close stops the scripted Studio, then the server.
func (s *Sim) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.Server.Close()
}

// autoSample requests one sample per period from the next offered sensor:
// 2 s of motion at its first frequency, 1 s of audio, or one camera still.
func (s *Sim) autoSample(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	next := 0
	pending := -1 // absolute message index (MessageCount) after which the last request's end is awaited
	var pendingAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hs := s.Hellos()
		if !s.Connected() || len(hs) == 0 {
			pending = -1
			continue
		}
		if pending >= 0 && !s.cycleEnded(pending) && time.Since(pendingAt) < 2*time.Minute {
			continue // Studio waits for the device, too
		}
		pending, pendingAt = s.MessageCount(), time.Now()
		sensors, _ := hs[len(hs)-1].Fields["sensors"].([]any)
		if len(sensors) == 0 {
			continue
		}
		sm, _ := sensors[next%len(sensors)].(map[string]any)
		next++
		name, _ := sm["name"].(string)
		req := SampleRequest{Sensor: name, Label: "demo"}
		freqs, _ := sm["frequencies"].([]any)
		if f, ok := firstFloat(freqs); ok && !strings.HasPrefix(name, "Camera") {
			req.Interval = 1000 / f
			req.Length = 2000
			if f > 1000 {
				req.Length = 1000
			}
		}
		if err := s.RequestSample(req); err != nil {
			s.log.Debug("scripted sample request not sent", "err", err)
			continue
		}
		s.log.Info("studio asks for a sample", "sensor", name, "length_ms", req.Length)
	}
}

// cycleEnded reports whether a sample cycle ended (finished or failed) in
// the messages from absolute index from on.
func (s *Server) cycleEnded(from int) bool {
	for _, m := range s.messagesFrom(from) {
		if m.Type == "sampleFinished" || (m.Type == "sample" && m.Fields["sample"] == false) {
			return true
		}
	}
	return false
}

func firstFloat(xs []any) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	f, ok := toFloat(xs[0])
	return f, ok && f > 0
}
