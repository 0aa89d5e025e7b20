package camserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/sync/errgroup"
)

// session is one authorized camera-server session: the client that owns
// the session id, and the two HTTP/2 transports (JSON, stream) that dial
// through conns. Concurrency: Serve is called once, by the supervisor;
// Close may be called at any time, also while Serve runs, and more than once.
type session struct {
	l        *Link
	c        *Client
	jsonRT   *http2.Transport
	streamRT *http2.Transport
	conns    *pinnedDialer // every connection of both transports
	once     sync.Once
}

// Serve runs the heartbeat, the message poll and the stream until one fails
// or ctx ends; the client is offered to Work (record delivery) meanwhile.
func (s *session) Serve(ctx context.Context) error {
	s.l.setClient(s.c)
	defer s.l.setClient(nil)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.heartbeat(ctx) })
	g.Go(func() error { return s.pollMessages(ctx) })
	if s.l.cfg.Stream.Sensor != "" {
		g.Go(func() error { return s.streamLoop(ctx) })
	}
	err := g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close drops both connections, idle or not.
func (s *session) Close() error {
	s.once.Do(func() {
		s.jsonRT.CloseIdleConnections()
		s.streamRT.CloseIdleConnections()
		s.conns.closeAll()
		s.l.deps.Stats.SetDetail("session", "down")
		s.l.deps.Stats.SetDetail("stream", "off")
	})
	return nil
}

// heartbeat sends heartBit when no counted request succeeded for the
// heartbeat interval (min(dead/4, 2m) unless configured).
func (s *session) heartbeat(ctx context.Context) error {
	for {
		every := s.l.cfg.Heartbeat.D()
		if every <= 0 {
			every = min(s.c.Limits().DeadSession/4, 2*time.Minute)
		}
		wait := s.c.LastOK().Add(every).Sub(s.l.deps.Clock.Now())
		if wait <= 0 {
			if err := s.c.HeartBit(ctx); err != nil {
				return fmt.Errorf("heartbeat: %w", err)
			}
			continue
		}
		if err := s.l.deps.Clock.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}
