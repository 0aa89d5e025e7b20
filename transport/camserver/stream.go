package camserver

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/camserver/frame"
)

// Why a stream attempt ended. Stream endings are never classified by the
// transport's error text (docs/protocols/camera-server.md §7.2): the
// heartBit that follows tells whether the session is gone.
var (
	errStalled   = errors.New("stream stalled: no progress within the watchdog")
	errReauth    = errors.New("session renewed; reopening the stream with the new id")
	errStopped   = errors.New("stream stopped by command")
	errRefused   = errors.New("stream ended by the server")
	errSubClosed = errors.New("sensor subscription closed")
)

// streamLoop keeps input.raw open while streaming is wanted: one stream at a
// time on its own connection; after every end it probes the session with
// heartBit (which re-authorizes on NO_SUCH_SESSION) and reopens with backoff.
func (s *session) streamLoop(ctx context.Context) error {
	l := s.l
	bo := retry.New(l.opts.StreamRetry)
	var lastErr string
	for {
		if !l.streamOn.Load() {
			l.deps.Stats.SetDetail("stream", "off")
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-l.streamReq:
				continue
			}
		}
		start := l.deps.Clock.Now()
		err := s.pushOnce(ctx)
		l.deps.Stats.SetDetail("stream", "off")
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err.Error() != lastErr {
			l.log.Info("camserver: stream ended", "err", err)
			lastErr = err.Error()
		}
		if errors.Is(err, errStopped) || errors.Is(err, errReauth) {
			bo.Reset()
			continue
		}
		if errors.Is(err, errSubClosed) {
			return fmt.Errorf("stream: %w", err)
		}
		// Learn why: NO_SUCH_SESSION re-authorizes inside the call.
		if herr := s.c.HeartBit(ctx); herr != nil {
			return fmt.Errorf("stream ended (%v); session probe: %w", err, herr)
		}
		if l.deps.Clock.Now().Sub(start) > bo.Policy().StableAfter {
			bo.Reset()
		}
		if err := l.deps.Clock.Sleep(ctx, bo.Next()); err != nil {
			return err
		}
	}
}

// pushOnce opens one input.raw and feeds it until it ends.
func (s *session) pushOnce(ctx context.Context) error {
	l := s.l
	sub, err := l.deps.Hub.Subscribe(l.cfg.Stream.Sensor, sensors.SubscribeOptions{Queue: 2, Policy: sensors.DropOldest, Label: l.deps.Name + "/stream"})
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	defer sub.Close()
	enc, err := newEncoder(l.cfg.Stream.Subproto, sub.Info(), l.cfg.Stream.Delta.D())
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	authCh := s.c.AuthChanged()
	shash, _ := s.c.Shash()
	q := url.Values{"shash": {shash}, "subproto": {l.cfg.Stream.Subproto}, "delta": {l.cfg.deltaMS()}}
	u := l.base.JoinPath("input.raw")
	u.RawQuery = q.Encode()

	body := newFrameBody(l.deps.Clock.Now)
	rctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(rctx, http.MethodPut, u.String(), body)
	if err != nil {
		cancel()
		return fmt.Errorf("stream: %w", err)
	}
	req.ContentLength = -1 // unknown length: no content-length header
	req.GetBody = nil      // never replayed after a refusal
	done := make(chan error, 1)
	go func() {
		resp, err := s.streamRT.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("%w: unexpected response %d", errRefused, resp.StatusCode)
		}
		done <- err
	}()
	defer func() {
		cancel() // RST_STREAM(CANCEL): a graceful END_STREAM only earns a refusal
		body.Close()
		<-done
		l.framesDrop.Add(body.dropped.Load())
	}()

	wd := max(3*l.cfg.Stream.Delta.D(), l.opts.Watchdog)
	check := clock.NewTicker(ctx, l.deps.Clock, max(min(wd/4, l.cfg.Stream.Delta.D()), 10*time.Millisecond))
	defer check.Stop()
	flush := clock.NewTicker(ctx, l.deps.Clock, l.cfg.Stream.Delta.D())
	defer flush.Stop()
	var taken uint64
	var sent int64
	on := false
	defer func() { l.deps.Stats.BytesOut.Add(body.bytes.Load() - sent) }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			done <- err // for the deferred wait
			return fmt.Errorf("%w: %v", errRefused, scrub(err, l.base))
		case <-body.Done():
			return errRefused
		case <-authCh:
			return errReauth
		case <-l.streamReq:
			if !l.streamOn.Load() {
				return errStopped
			}
		case smp, ok := <-sub.C():
			if !ok {
				return errSubClosed
			}
			if f := enc.add(smp); f != nil {
				s.offer(body, f)
			}
		case <-flush.C:
			if f := enc.flush(); f != nil {
				s.offer(body, f)
			}
		case now := <-check.C:
			if n := body.bytes.Load(); n != sent {
				l.deps.Stats.BytesOut.Add(n - sent)
				sent = n
			}
			if t := body.taken.Load(); t != taken {
				l.framesSent.Add(t - taken)
				taken = t
				if !on {
					on = true
					l.deps.Stats.SetDetail("stream", "on")
					l.log.Info("camserver: streaming", "subproto", l.cfg.Stream.Subproto, "sensor", l.cfg.Stream.Sensor)
				}
			}
			if body.Waiting(now) > wd {
				return errStalled
			}
		}
	}
}

// offer frames a payload; oversized payloads are dropped and counted (the
// server is unreliable above 500 000 bytes, docs/protocols/camera-server.md §3.2).
func (s *session) offer(body *frameBody, payload []byte) {
	f, err := frame.Encode(payload)
	if err != nil {
		if s.l.framesTooBig.Add(1) == 1 {
			s.l.log.Warn("camserver: frame over the server's reliable size dropped; lower the resolution", "err", err)
		}
		return
	}
	body.Offer(f)
}

// encoder turns samples into frame payloads for one subprotocol.
type encoder interface {
	add(sensors.Sample) []byte // a payload ready now, or nil
	flush() []byte             // a payload due at the frame interval, or nil
}

func newEncoder(subproto string, info sensors.Info, delta time.Duration) (encoder, error) {
	switch {
	case subproto == SubprotoRawJPEG && info.Class == sensors.Still:
		return &jpegEncoder{}, nil
	case subproto == SubprotoDeflateJSON && info.Class == sensors.Motion:
		return &motionEncoder{info: info}, nil
	}
	return nil, fmt.Errorf("subproto %s cannot carry %v sensor %q (use %s for stills, %s for motion)",
		subproto, info.Class, info.Name, SubprotoRawJPEG, SubprotoDeflateJSON)
}

// jpegEncoder sends the latest still once per frame interval: the server
// relays at most one frame per delta to viewers anyway
// (docs/protocols/camera-server.md §3.3).
type jpegEncoder struct{ latest []byte }

func (e *jpegEncoder) add(s sensors.Sample) []byte { e.latest = s.Data; return nil }
func (e *jpegEncoder) flush() []byte {
	f := e.latest
	e.latest = nil
	return f
}

// motionEncoder collects rows for one frame interval and sends them as one
// deflated JSON object: {"t0":unix ms,"rate":Hz,"axes":[…],"units":…,"rows":[[…]…]}.
type motionEncoder struct {
	info sensors.Info
	t0   time.Time
	rows [][]float64
}

// maxRows bounds one window whatever the interval.
const maxRows = 20000

func (e *motionEncoder) add(s sensors.Sample) []byte {
	if len(e.rows) == 0 {
		e.t0 = s.Time
	}
	if len(e.rows) < maxRows {
		e.rows = append(e.rows, s.Values)
	}
	return nil
}

// MotionWindow is the DEFLATE_JSON payload (after inflating).
type MotionWindow struct {
	T0    int64       `json:"t0"`
	Rate  float64     `json:"rate"`
	Axes  []string    `json:"axes"`
	Units string      `json:"units"`
	Rows  [][]float64 `json:"rows"`
}

func (e *motionEncoder) flush() []byte {
	if len(e.rows) == 0 {
		return nil
	}
	w := MotionWindow{T0: e.t0.UnixMilli(), Rate: e.info.Rate, Axes: e.info.Axes, Units: e.info.Units, Rows: e.rows}
	e.rows = nil
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	if err := json.NewEncoder(zw).Encode(w); err != nil {
		return nil
	}
	_ = zw.Close()
	return buf.Bytes()
}
