package camserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// Remote commands understood in messages addressed to this device.
const (
	CmdSnapshot    = "snapshot"     // take a still and add it as a record
	CmdStreamStart = "stream_start" // start pushing input.raw
	CmdStreamStop  = "stream_stop"  // stop pushing
	CmdStatus      = "status"       // reply to the sender with our state
)

// stampFile persists the last processed message stamp, so a restart resumes
// after the messages it already handled (the server bookmark is set at
// request time and could skip fetched-but-unprocessed messages).
const stampFile = "msg-stamp"

func (l *Link) loadStamp() string {
	if l.deps.StateDir == "" {
		return SyncToken
	}
	b, err := os.ReadFile(filepath.Join(l.deps.StateDir, stampFile))
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return SyncToken
	}
	return strings.TrimSpace(string(b))
}

func (l *Link) saveStamp(stamp string) {
	if l.deps.StateDir == "" {
		return
	}
	if err := atomicfile.WriteFile(filepath.Join(l.deps.StateDir, stampFile), []byte(stamp+"\n"), 0o600); err != nil {
		l.log.Warn("camserver: cannot persist message stamp", "err", err)
	}
}

// pollMessages fetches messages (docs/protocols/camera-server.md §6.2): from
// the persisted stamp, 32 per page, at once again while pages are full; once
// drained, the next poll is getMsgsAndSync so the server bookmark follows
// us. Every message is handled at most once per stamp (stamps only grow).
// Between polls it waits poll, or poll_fast while commands are in use
// (pollPace, §6.4); the status detail "poll" says when it polls fast.
//
// A getMsgs the server cannot answer (a BAD code that retrying may fix, or
// JSON_PARSER_FAIL from a stored message with bad params) does not end the
// session: the poll backs off on its own (poll interval doubling to
// maxPollBackoff) while the heartbeat and the stream go on, and the status
// detail "messages" says why. The real server answers DATABASE_FAIL to every
// device's getMsgs after one message with "params":"abc", until it restarts;
// ending the session for it kept the stream off for minutes.
func (s *session) pollMessages(ctx context.Context) error {
	l := s.l
	stamp := l.loadStamp()
	sync := false
	bo := retry.New(retry.Policy{Min: l.cfg.Poll.D(), Max: max(maxPollBackoff, l.cfg.Poll.D())})
	var failing Code = -1 // the code getMsgs fails with, -1 while it works
	pollDetail := ""      // the status detail "poll" as last set
	defer l.deps.Stats.SetDetail("messages", "")
	defer l.deps.Stats.SetDetail("poll", "")
	for {
		msgs, err := s.c.GetMsgs(ctx, stamp, sync && stamp != SyncToken)
		var ae *APIError
		switch {
		case err == nil:
		case errors.As(err, &ae) && (ae.Code == CodeJSONParserFail || (ae.Code.Transient() && ae.Code != CodeNoSuchSession)):
			wait := bo.Next()
			if ae.Code != failing {
				if ae.Code == CodeJSONParserFail {
					// Someone stored a message with non-object params: every
					// getMsgs fails until it expires.
					l.log.Error("camserver: server cannot list messages (a stored message has bad params); polling slowly", "err", err)
				} else {
					l.log.Warn("camserver: server cannot list messages; polling with backoff, the stream goes on", "err", err)
				}
				failing = ae.Code
			}
			l.deps.Stats.SetDetail("messages", fmt.Sprintf("getMsgs failing: %v (code %d); next try in %v", ae.Code, int(ae.Code), wait.Round(time.Second)))
			if err := l.deps.Clock.Sleep(ctx, wait); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("poll messages: %w", err)
		}
		if failing >= 0 {
			l.log.Info("camserver: messages can be listed again", "was", failing)
			l.deps.Stats.SetDetail("messages", "")
			failing = -1
		}
		bo.Reset()
		last := stamp
		for _, m := range msgs {
			if stamp != SyncToken && m.Stamp <= stamp {
				continue // already handled (defensive: the server pages by stamp)
			}
			l.deps.Stats.MsgsIn.Add(1)
			// Any device on the account writes these; they are logged.
			m.Msg, m.Device = l.peer(m.Msg), l.peer(m.Device)
			if err := s.handle(ctx, m); err != nil && ctx.Err() == nil {
				l.log.Warn("camserver: command failed", "msg", m.Msg, "from", m.Device, "err", err)
			}
			if last == SyncToken || m.Stamp > last {
				last = m.Stamp
			}
		}
		if last != stamp {
			stamp = last
			l.saveStamp(stamp)
		}
		if len(msgs) >= 32 {
			sync = false
			continue
		}
		sync = true
		wait, fast := l.pace.next(l.deps.Clock.Now(), s.c.spacing(pollShare))
		detail := ""
		if fast {
			detail = fmt.Sprintf("fast %v (commands in use)", wait)
		}
		if detail != pollDetail {
			l.deps.Stats.SetDetail("poll", detail)
			pollDetail = detail
		}
		if err := l.deps.Clock.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// maxPollBackoff caps the message poll's own backoff while getMsgs fails.
const maxPollBackoff = 5 * time.Minute

// commandParams are the fields of a command's params we look at.
type commandParams struct {
	ID     commandID `json:"id"`
	Device string    `json:"device"` // when set, the command is for that device only
}

// isCommand reports whether msg names a command the link acts on.
func isCommand(msg string) bool {
	switch msg {
	case CmdSnapshot, CmdStreamStart, CmdStreamStop, CmdStatus:
		return true
	}
	return false
}

func (s *session) handle(ctx context.Context, m Message) error {
	l := s.l
	var p commandParams
	if len(m.Params) > 0 {
		_ = json.Unmarshal(m.Params, &p) // params of other shapes are not commands for us
	}
	if p.Device != "" && p.Device != l.dev {
		return nil
	}
	if !isCommand(m.Msg) {
		if ok, held := l.ignoredLog.Allow(l.deps.Clock.Now()); ok {
			l.log.Info("camserver: message ignored", "msg", m.Msg, "from", m.Device, "held_back", held)
		}
		return nil
	}
	now := l.deps.Clock.Now()
	if verdict, n := l.gate.allow(m.Device, now); verdict != gateOK {
		l.deps.Stats.SetDetail(verdict, strconv.FormatUint(n, 10))
		if ok, held := l.refusedLog.Allow(now); ok {
			why := "sender over its rate (commands.per_minute, commands.burst)"
			if verdict == gateRefused {
				why = "sender not in commands.from"
			}
			l.log.Warn("camserver: command dropped", "msg", m.Msg, "from", m.Device, "why", why, "held_back", held)
		}
		return nil
	}
	// A command taken: more are likely to follow, so poll fast for a while.
	l.pace.command(now)
	switch m.Msg {
	case CmdSnapshot:
		l.log.Info("camserver: snapshot requested", "from", m.Device)
		return l.snapshot(ctx, m.Device, p.ID.String())
	case CmdStreamStart, CmdStreamStop:
		on := m.Msg == CmdStreamStart
		if on && l.cfg.Stream.Sensor == "" {
			return fmt.Errorf("%s: no stream sensor configured", m.Msg)
		}
		if l.streamOn.Swap(on) != on {
			l.log.Info("camserver: stream switched by message", "on", on, "from", m.Device)
			select {
			case l.streamReq <- struct{}{}:
			default:
			}
		}
		return nil
	default: // CmdStatus
		b, err := json.Marshal(l.statusReport(p.ID))
		if err != nil {
			return err
		}
		err = s.c.AddMsgs(ctx, Message{Msg: CmdStatus, Target: m.Device, Params: b})
		if err == nil {
			l.deps.Stats.MsgsOut.Add(1)
		}
		return err
	}
}

// Status is the reply to a status command.
type Status struct {
	// ID is the command's params.id echoed as it was sent (a JSON string or
	// number; decoded, a string or a float64).
	ID      any               `json:"id,omitempty"`
	Device  string            `json:"device"`
	Version string            `json:"version"`
	Stream  bool              `json:"stream"`
	Frames  uint64            `json:"frames"`
	Dropped uint64            `json:"dropped"`
	Details map[string]string `json:"details"`
	Sensors []SensorStatus    `json:"sensors"`
}

// SensorStatus is one sensor in a Status.
type SensorStatus struct {
	Name  string `json:"name"`
	Class string `json:"class"`
	Kind  string `json:"kind"`
}

func (l *Link) statusReport(id commandID) Status {
	st := Status{Device: l.dev, Version: l.deps.Version, Stream: l.streamOn.Load(),
		Frames: l.framesSent.Load(), Dropped: l.framesDrop.Load(), Details: l.deps.Stats.Details()}
	if raw := id.JSON(); raw != nil {
		st.ID = raw
	}
	if l.deps.Hub != nil {
		for _, in := range l.deps.Hub.Sensors() {
			st.Sensors = append(st.Sensors, SensorStatus{Name: in.Name, Class: in.Class.String(), Kind: in.Kind})
		}
	}
	return st
}

// snapshot takes one still and queues it for addRecord. The spool write comes
// first, so a still taken while the session drops is delivered later.
func (l *Link) snapshot(ctx context.Context, from, id string) error {
	name := l.cfg.snapshotSensor()
	if name == "" || l.deps.Hub == nil {
		return errors.New("snapshot: no still sensor configured")
	}
	sub, err := l.deps.Hub.Subscribe(name, sensors.SubscribeOptions{Queue: 1, Policy: sensors.DropOldest, Label: l.deps.Name + "/snapshot"})
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer sub.Close()
	if sub.Info().Class != sensors.Still {
		return fmt.Errorf("snapshot: sensor %q gives %v, not stills", name, sub.Info().Class)
	}
	// A deadline on the wait, so wall time: the injected clock has no timers.
	ctx, cancel := context.WithTimeout(ctx, l.opts.SnapshotTimeout)
	defer cancel()
	var smp sensors.Sample
	select {
	case <-ctx.Done():
		return fmt.Errorf("snapshot: waiting for a still: %w", ctx.Err())
	case s, ok := <-sub.C():
		if !ok {
			return errors.New("snapshot: sensor closed")
		}
		smp = s
	}
	return l.queueRecord(ctx, smp.Data, recordMeta{Meta: "JPEG", From: from, ID: id})
}
