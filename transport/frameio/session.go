package frameio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// session is one joined socket. Serve is its only reader of conn after Dial
// (through the reader goroutine it owns) and its only writer.
type session struct {
	l     *Link
	conn  *websocket.Conn
	refs  refs
	topic string
	// joinRef is the ref of the pending (re)join, "" when none is pending.
	joinRef string

	closeOnce sync.Once
	done      chan struct{}
}

func (s *session) write(m Message) error {
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("socket write: %w", err)
	}
	// A net.Conn deadline is wall time, so it is not read from the clock.
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.l.opts.JoinTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("socket write: %w", redactErr(err))
	}
	s.l.deps.Stats.MsgsOut.Add(1)
	s.l.deps.Stats.BytesOut.Add(int64(len(b)))
	return nil
}

// join sends phx_join for each candidate topic until one is accepted (an
// unknown id answers "unmatched topic", docs/protocols/frameio-c2c.md §4.3). It reads directly: Serve has not
// started yet.
func (s *session) join(ctx context.Context, topics []string) error {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	var last error
	for _, topic := range topics {
		ref := s.refs.next()
		if err := s.write(Message{Topic: topic, Event: evJoin, Payload: json.RawMessage(`""`), Ref: ref}); err != nil {
			return err
		}
		deadline := time.Now().Add(s.l.opts.JoinTimeout) // a conn deadline: wall time
		for {
			_ = s.conn.SetReadDeadline(deadline)
			_, b, err := s.conn.ReadMessage()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("join %s: %w", topic, redactErr(err))
			}
			s.l.deps.Stats.MsgsIn.Add(1)
			s.l.deps.Stats.BytesIn.Add(int64(len(b)))
			m, err := DecodeMessage(b)
			if err != nil || m.Event != evReply || m.Ref != ref {
				continue // not ours; nothing else matters before the join
			}
			r, err := m.Reply()
			if err != nil {
				return fmt.Errorf("join %s: %w", topic, err)
			}
			if r.Status == "ok" {
				s.topic = topic
				s.l.log.Info("socket_joined", "topic", topic)
				return nil
			}
			last = fmt.Errorf("join %s refused: %s", topic, reason(r.Response, s.l.deps.Secrets))
			break
		}
		if !strings.Contains(last.Error(), "unmatched topic") {
			return last
		}
	}
	if last == nil {
		return errors.New("join: no device id to join")
	}
	return last
}

type readResult struct {
	m   Message
	err error
}

// serveState is Serve's loop state; only Serve's goroutine touches it.
type serveState struct {
	pendingHB    string
	rejoin       *clock.Timer // stopped while no rejoin is due
	rejoinBO     *retry.Backoff
	joinDeadline *clock.Timer // running while a rejoin awaits its reply
}

// Serve keeps the channel alive: a heartbeat every Heartbeat whose reply
// must arrive before the next one, rejoin after phx_error, status_updated
// into the paused flag. It returns when the socket dies, the server closes
// the channel, or ctx ends (nil). It owns the reader goroutine and the
// goroutines of its ticker and timers, and returns after all have stopped.
func (s *session) Serve(ctx context.Context) error {
	in := make(chan readResult, 8)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.read(in)
	}()
	defer func() {
		s.Close()
		wg.Wait()
	}()
	o := s.l.opts
	tick, stopTick := o.Ticker(o.Heartbeat)
	defer stopTick()
	clk := s.l.deps.Clock
	st := &serveState{rejoin: clock.NewTimer(clk), rejoinBO: retry.New(o.Rejoin), joinDeadline: clock.NewTimer(clk)}
	defer st.rejoin.Stop()
	defer st.joinDeadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if st.pendingHB != "" {
				// A reply may be queued behind the tick: take what has
				// already arrived before declaring the socket dead.
				if err := s.drain(ctx, in, st); err != nil || ctx.Err() != nil {
					return err
				}
			}
			if st.pendingHB != "" {
				return errors.New("socket: heartbeat timeout (no reply within one interval)")
			}
			st.pendingHB = s.refs.next()
			if err := s.write(Message{Topic: topicPhx, Event: evHeartbeat, Payload: json.RawMessage(`{}`), Ref: st.pendingHB}); err != nil {
				return err
			}
		case <-st.rejoin.C():
			s.joinRef = s.refs.next()
			if err := s.write(Message{Topic: s.topic, Event: evJoin, Payload: json.RawMessage(`""`), Ref: s.joinRef}); err != nil {
				return err
			}
			st.joinDeadline.Reset(o.JoinTimeout)
		case <-st.joinDeadline.C():
			st.joinDeadline.Stop()
			s.joinRef = ""
			st.rejoin.Reset(st.rejoinBO.Next())
			s.l.log.Warn("socket: rejoin timed out; retrying")
		case r := <-in:
			if err := s.handle(ctx, r, st); err != nil || ctx.Err() != nil {
				return err
			}
		}
	}
}

// drain handles the frames already queued, without waiting.
func (s *session) drain(ctx context.Context, in <-chan readResult, st *serveState) error {
	for {
		select {
		case r := <-in:
			if err := s.handle(ctx, r, st); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// handle acts on one frame (or the reader's error).
func (s *session) handle(ctx context.Context, r readResult, st *serveState) error {
	if r.err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return r.err
	}
	m := r.m
	switch {
	case m.Event == evReply && m.Topic == topicPhx:
		if m.Ref == st.pendingHB {
			st.pendingHB = ""
			s.l.hbAcked.Add(1)
		}
	case m.Event == evReply && s.joinRef != "" && m.Ref == s.joinRef:
		st.joinDeadline.Stop()
		s.joinRef = ""
		if rep, err := m.Reply(); err == nil && rep.Status == "ok" {
			st.rejoinBO.Reset()
			s.l.deps.Stats.SetDetail("socket", "joined")
			s.l.log.Info("socket_joined", "topic", s.topic, "rejoin", true)
		} else {
			d := st.rejoinBO.Next()
			s.l.log.Warn("socket: rejoin refused", "reason", reason(rep.Response, s.l.deps.Secrets), "retry_in", d)
			st.rejoin.Reset(d)
		}
	case m.Event == evReply:
		// A reply to a push we no longer wait for.
	case m.Topic != s.topic:
		s.l.logEventOnce(m.Topic + "/" + m.Event)
	case m.Event == evError:
		s.l.deps.Stats.SetDetail("socket", "rejoining")
		d := st.rejoinBO.Next()
		s.l.log.Warn("socket: channel error; rejoining", "reason", reason(m.Payload, s.l.deps.Secrets), "retry_in", d)
		st.rejoin.Reset(d)
	case m.Event == evClose:
		// Phoenix clients do not rejoin after phx_close: check that we are
		// still authorized, then let the supervisor reconnect with backoff
		// (docs/protocols/frameio-c2c.md §4.5).
		return s.closedByServer(ctx)
	case m.Event == evStatus:
		if p, ok := pausedState(m.Payload); ok {
			s.l.setPaused(p, "socket")
		} else {
			s.l.log.Warn("socket: status_updated with an unknown payload")
		}
	default:
		s.l.logEventOnce(m.Event)
	}
	return nil
}

// closedByServer handles phx_close: a 401/403 on /devices/me means the
// authorization went away, which is permanent once refresh also fails.
func (s *session) closedByServer(ctx context.Context) error {
	err := errors.New("socket: channel closed by the server (phx_close)")
	access, aerr := s.l.access(ctx)
	if aerr != nil {
		return fmt.Errorf("%w; %w", err, aerr)
	}
	if _, _, ierr := s.l.identity(ctx, access); ierr != nil && retry.IsPermanent(ierr) {
		return ierr
	}
	return err
}

// read decodes frames until the socket fails. A frame that is not a valid
// V1 message is logged and skipped: a peer's garbage does not end the
// session. No frame at all for DeadAfter ends it.
func (s *session) read(out chan<- readResult) {
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.l.opts.DeadAfter)) // a conn deadline: wall time
		_, b, err := s.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				err = fmt.Errorf("socket closed by server: code %d", ce.Code)
			} else {
				err = fmt.Errorf("socket read: %w", redactErr(err))
			}
			select {
			case out <- readResult{err: err}:
			case <-s.done:
			}
			return
		}
		s.l.deps.Stats.MsgsIn.Add(1)
		s.l.deps.Stats.BytesIn.Add(int64(len(b)))
		m, err := DecodeMessage(b)
		if err != nil {
			s.l.log.Debug("socket: undecodable frame skipped", "err", err)
			continue
		}
		select {
		case out <- readResult{m: m}:
		case <-s.done:
			return
		}
	}
}

// Close closes the socket; safe to call more than once and after Serve.
func (s *session) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		_ = s.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second)) // a conn deadline: wall time
		_ = s.conn.Close()
		s.l.deps.Stats.SetDetail("socket", "disconnected")
		s.l.log.Info("socket_closed")
	})
	return nil
}
