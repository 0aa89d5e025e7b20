package console

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/sensors"
)

// Live streams. Each one is a hub subscription that lives exactly as long
// as its request: the first viewer of an idle sensor starts it, the last
// one to leave (browser closed, tab hidden, page navigated) stops it
// unless a link still uses it. The subscription's queue is short and drops
// the oldest sample when full (a late frame is worth less than the current
// one); what a stream dropped is counted in the hub's per-sensor counter
// and, once it ends, in the console's.

// Queue lengths of the live subscriptions: a preview keeps two frames, a
// feed about a second of blocks or rows.
const (
	mjpegQueue = 2
	feedQueue  = 128
	// feedPeriod is how often a feed sends what it gathered.
	feedPeriod = 100 * time.Millisecond
	// maxPlotRate bounds the rows per second a motion feed sends; a faster
	// sensor is decimated to it (a 10 s plot has no use for more).
	maxPlotRate = 250
	// envelopeStep is the time one column of the audio waveform covers.
	envelopeStep = 10 * time.Millisecond
	// maxEnvelope bounds the waveform columns of one event (2 s of audio),
	// whatever piled up while a write was slow.
	maxEnvelope = 200
	// stillWait bounds how long still.jpg waits for a frame.
	stillWait = 10 * time.Second
	// mjpegBoundary separates the parts of the preview stream.
	mjpegBoundary = "edgeagentframe"
)

// liveCounters are the console's stream counters (process-wide per
// console; see ConsoleStats).
type liveCounters struct {
	dropped atomic.Uint64
	mu      sync.Mutex
	perName map[string]int
}

func (c *Console) viewerCounts() map[string]int {
	c.live.mu.Lock()
	defer c.live.mu.Unlock()
	out := make(map[string]int, len(c.live.perName))
	for k, v := range c.live.perName {
		out[k] = v
	}
	return out
}

// stream is one live view being served: a viewer slot, a place in Run's
// wait group and a hub subscription.
type stream struct {
	c    *Console
	name string
	sub  sensors.Subscription
	ctx  context.Context
	rc   *http.ResponseController
	stop context.CancelFunc

	mu      sync.Mutex
	ended   bool          // cut: no write deadline may be set after it
	cutDone chan struct{} // closed when cut has run
}

// cut makes a write blocked on the stream's connection return at once; it
// runs when the stream's context ends.
func (s *stream) cut() {
	defer close(s.cutDone)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	_ = s.rc.SetWriteDeadline(time.Unix(1, 0))
}

// openStream takes a viewer slot and subscribes to sensor name. On failure
// it has answered the request.
func (c *Console) openStream(w http.ResponseWriter, r *http.Request, name string, queue int) (*stream, bool) {
	select {
	case c.viewers <- struct{}{}:
	default:
		apiError(w, http.StatusServiceUnavailable, "too many live views open (%d); close one", MaxViewers)
		return nil, false
	}
	runCtx, ok := c.begin(r.Context())
	if !ok {
		<-c.viewers
		apiError(w, http.StatusServiceUnavailable, "the console is not running")
		return nil, false
	}
	sub, err := c.opts.Hub.Subscribe(name, sensors.SubscribeOptions{Queue: queue, Policy: sensors.DropOldest, Label: "console"})
	if err != nil {
		c.wg.Done()
		<-c.viewers
		code := http.StatusServiceUnavailable
		if errors.Is(err, sensors.ErrUnknownSensor) {
			code = http.StatusNotFound
		}
		apiError(w, code, "%v", err)
		return nil, false
	}
	ctx, cancel := context.WithCancel(r.Context())
	unhook := context.AfterFunc(runCtx, cancel) // Run's end ends the stream
	// A write blocked on a browser that stopped reading returns at once
	// when the stream ends (the connection's deadline is safe to set from
	// another goroutine), so Run's end does not wait for writeTimeout.
	st := &stream{c: c, name: name, sub: sub, ctx: ctx, rc: http.NewResponseController(w), cutDone: make(chan struct{})}
	uncut := context.AfterFunc(ctx, st.cut)
	st.stop = func() {
		unhook()
		if !uncut() {
			<-st.cutDone // it ran: no deadline is set after the handler returns
		}
		cancel()
	}
	c.live.mu.Lock()
	if c.live.perName == nil {
		c.live.perName = map[string]int{}
	}
	c.live.perName[name]++
	c.live.mu.Unlock()
	return st, true
}

// close releases everything openStream took.
func (s *stream) close() {
	s.stop()
	s.sub.Close()
	s.c.live.dropped.Add(s.sub.Dropped())
	s.c.live.mu.Lock()
	if s.c.live.perName[s.name]--; s.c.live.perName[s.name] <= 0 {
		delete(s.c.live.perName, s.name)
	}
	s.c.live.mu.Unlock()
	<-s.c.viewers
	s.c.wg.Done()
}

// write sends p with a deadline, so a browser that stopped reading frees
// its slot. Once the stream ended it sends nothing: the deadline set then
// must not be moved.
func (s *stream) write(w http.ResponseWriter, p ...[]byte) error {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return context.Canceled
	}
	_ = s.rc.SetWriteDeadline(s.c.clk.Now().Add(writeTimeout))
	s.mu.Unlock()
	for _, b := range p {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

// serve is a live view's loop, run on its handler's goroutine: it calls
// sample with each sample as it comes and, when ticks is not nil, tick at
// each tick, until the stream ends, the hub closes the subscription, or a
// call returns false (the view cannot go on: its write failed).
func (s *stream) serve(sample func(sensors.Sample) bool, ticks <-chan time.Time, tick func() bool) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case smp, ok := <-s.sub.C():
			if !ok || !sample(smp) {
				return
			}
		case <-ticks:
			if !tick() {
				return
			}
		}
	}
}

// sensorOf looks a sensor up, answering 404 when it is unknown.
func (c *Console) sensorOf(w http.ResponseWriter, name string) (sensors.Info, bool) {
	in, ok := c.opts.Hub.Info(name)
	if !ok {
		apiError(w, http.StatusNotFound, "no sensor %q", name)
	}
	return in, ok
}

// stillOf looks up the still camera the request's path names ({name}),
// answering 404 when the sensor is unknown and 409 when it produces no JPEG
// stills (lacks ends that answer: what the request cannot have).
func (c *Console) stillOf(w http.ResponseWriter, r *http.Request, lacks string) (sensors.Info, bool) {
	in, ok := c.sensorOf(w, r.PathValue("name"))
	if ok && in.Class != sensors.Still {
		apiError(w, http.StatusConflict, "sensor %q produces %s, not JPEG stills%s", in.Name, in.Class, lacks)
		return in, false
	}
	return in, ok
}

// handleMJPEG is GET /api/sensors/{name}/mjpeg: the still camera's frames
// as they come, as multipart/x-mixed-replace (an <img> shows it). ?fps=N
// caps the rate sent; frames above it are skipped.
func (c *Console) handleMJPEG(w http.ResponseWriter, r *http.Request) {
	in, ok := c.stillOf(w, r, ": no preview stream")
	if !ok {
		return
	}
	var minGap time.Duration
	if v := r.URL.Query().Get("fps"); v != "" {
		fps, err := strconv.ParseFloat(v, 64)
		if err != nil || fps <= 0 || fps > 120 {
			apiError(w, http.StatusBadRequest, "fps: want a number in (0, 120]")
			return
		}
		minGap = time.Duration(float64(time.Second) / fps)
	}
	s, ok := c.openStream(w, r, in.Name, mjpegQueue)
	if !ok {
		return
	}
	defer s.close()
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	w.Header().Set("Cache-Control", "no-store")
	var last time.Time
	s.serve(func(smp sensors.Sample) bool {
		if minGap > 0 && !last.IsZero() && smp.Time.Sub(last) < minGap {
			return true
		}
		last = smp.Time
		head := fmt.Appendf(nil, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", mjpegBoundary, len(smp.Data))
		return s.write(w, head, smp.Data, []byte("\r\n")) == nil
	}, nil, nil)
}

// handleStill is GET /api/sensors/{name}/still.jpg: the next frame of a
// still camera, one JPEG (for scripts: curl -o now.jpg).
func (c *Console) handleStill(w http.ResponseWriter, r *http.Request) {
	in, ok := c.stillOf(w, r, "")
	if !ok {
		return
	}
	s, ok := c.openStream(w, r, in.Name, 1)
	if !ok {
		return
	}
	defer s.close()
	t := clock.AfterTimer(c.clk, stillWait)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		apiError(w, http.StatusServiceUnavailable, "stopped before a frame came")
	case <-t.C():
		apiError(w, http.StatusGatewayTimeout, "no frame from %q within %s", in.Name, stillWait)
	case smp, ok := <-s.sub.C():
		if !ok {
			apiError(w, http.StatusServiceUnavailable, "the sensor hub closed")
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(smp.Data)))
		_, _ = w.Write(smp.Data)
	}
}

// handleLive is GET /api/sensors/{name}/live: a motion sensor (or an
// on-device model's scores, one per label) or an audio sensor as
// server-sent events, one every feedPeriod (see PlotEvent and LevelEvent).
func (c *Console) handleLive(w http.ResponseWriter, r *http.Request) {
	in, ok := c.sensorOf(w, r.PathValue("name"))
	if !ok {
		return
	}
	var agg aggregator
	switch in.Class {
	case sensors.Motion, sensors.Inference:
		agg = &plotAgg{}
	case sensors.Audio:
		agg = &levelAgg{}
	default:
		apiError(w, http.StatusConflict, "sensor %q produces %s: its live view is the preview stream, not a feed", in.Name, in.Class)
		return
	}
	s, ok := c.openStream(w, r, in.Name, feedQueue)
	if !ok {
		return
	}
	defer s.close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	// A comment first, so the browser's EventSource opens at once.
	if err := s.write(w, []byte(": "+in.Name+"\n\n")); err != nil {
		return
	}
	tick := clock.NewTicker(s.ctx, c.clk, feedPeriod)
	defer tick.Stop()
	var buf []byte
	s.serve(func(smp sensors.Sample) bool {
		agg.add(s.sub.Info(), smp)
		return true
	}, tick.C, func() bool {
		ev := agg.flush(s.sub.Info(), s.sub.Dropped())
		if ev == nil {
			return true
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return false
		}
		buf = append(append(append(buf[:0], "data: "...), b...), "\n\n"...)
		return s.write(w, buf) == nil
	})
}

// aggregator gathers one feed's samples between two events. add and flush
// are called from the stream's goroutine only.
type aggregator interface {
	add(in sensors.Info, s sensors.Sample)
	// flush returns the event to send, or nil when there is nothing new.
	flush(in sensors.Info, dropped uint64) any
}

// PlotEvent is one event of a motion feed (or a model's scores, a row per
// classification): rows since the previous event.
// T are milliseconds since the feed's first row (the samples' own capture
// times), V one row of values per time.
type PlotEvent struct {
	Axes  []string    `json:"axes"`
	Units string      `json:"units,omitempty"`
	T     []float64   `json:"t"`
	V     [][]float64 `json:"v"`
	// Rate is the rows per second the sensor delivered over the last
	// second (measured); Declared what its driver reports.
	Rate     float64 `json:"rate"`
	Declared float64 `json:"declared"`
	// Every is the decimation: one row sent for every Every received.
	Every   int    `json:"every"`
	Dropped uint64 `json:"dropped"`
}

type plotAgg struct {
	t0    time.Time
	n     uint64 // rows received
	ev    PlotEvent
	rate  rateMeter
	every int
}

func (p *plotAgg) add(in sensors.Info, s sensors.Sample) {
	if p.n == 0 {
		p.t0 = s.Time
		rate := in.Rate
		for _, f := range in.Frequencies {
			rate = max(rate, f)
		}
		p.every = max(1, int(math.Ceil(rate/maxPlotRate)))
	}
	p.rate.add(s.Time)
	n := p.n
	p.n++
	if n%uint64(p.every) != 0 || len(p.ev.T) >= maxPlotRate {
		return
	}
	p.ev.T = append(p.ev.T, float64(s.Time.Sub(p.t0).Microseconds())/1000)
	p.ev.V = append(p.ev.V, s.Values)
}

func (p *plotAgg) flush(in sensors.Info, dropped uint64) any {
	if len(p.ev.T) == 0 {
		return nil
	}
	ev := p.ev
	ev.Axes, ev.Units, ev.Declared, ev.Every, ev.Dropped = in.Axes, in.Units, in.Rate, p.every, dropped
	ev.Rate = p.rate.perSecond()
	p.ev = PlotEvent{T: make([]float64, 0, len(ev.T)), V: make([][]float64, 0, len(ev.V))}
	return ev
}

// rateMeter measures events per second over the last second of sample
// times, from a small ring of their times.
type rateMeter struct {
	times [64]time.Time
	n     int
}

func (m *rateMeter) add(t time.Time) {
	m.times[m.n%len(m.times)] = t
	m.n++
}

// perSecond is the rate over the recorded span (at most the last 64
// events).
func (m *rateMeter) perSecond() float64 {
	k := min(m.n, len(m.times))
	if k < 2 {
		return 0
	}
	newest := m.times[(m.n-1)%len(m.times)]
	oldest := m.times[(m.n-k)%len(m.times)]
	span := newest.Sub(oldest).Seconds()
	if span <= 0 {
		return 0
	}
	return math.Round(float64(k-1)/span*10) / 10
}

// LevelEvent is one event of an audio feed, over the blocks since the
// previous one: RMS and peak in dBFS (full scale is 0, silence -120), and
// the waveform's envelope, one [min, max] pair (-1…1) per 10 ms.
type LevelEvent struct {
	RMS      float64      `json:"rms_dbfs"`
	Peak     float64      `json:"peak_dbfs"`
	Envelope [][2]float64 `json:"envelope"`
	Rate     float64      `json:"rate"`
	Channels int          `json:"channels"`
	Dropped  uint64       `json:"dropped"`
	// Lost counts envelope columns cut because too many piled up.
	Lost int `json:"lost,omitempty"`
}

type levelAgg struct {
	sumSq  float64
	n      int
	peak   int
	env    [][2]float64
	colMin int
	colMax int
	colN   int
	lost   int
}

func (a *levelAgg) add(in sensors.Info, s sensors.Sample) {
	ch := max(in.Channels, 1)
	perCol := max(1, int(in.Rate*envelopeStep.Seconds())) * ch
	for i := 0; i+1 < len(s.Data); i += 2 {
		v := int(int16(binary.LittleEndian.Uint16(s.Data[i:])))
		a.sumSq += float64(v) * float64(v)
		a.n++
		av := v
		if av < 0 {
			av = -av
		}
		a.peak = max(a.peak, av)
		if a.colN == 0 {
			a.colMin, a.colMax = v, v
		} else {
			a.colMin, a.colMax = min(a.colMin, v), max(a.colMax, v)
		}
		if a.colN++; a.colN == perCol {
			if len(a.env) < maxEnvelope {
				a.env = append(a.env, [2]float64{round3(float64(a.colMin) / 32768), round3(float64(a.colMax) / 32768)})
			} else {
				a.lost++
			}
			a.colN = 0
		}
	}
}

func (a *levelAgg) flush(in sensors.Info, dropped uint64) any {
	if a.n == 0 {
		return nil
	}
	ev := LevelEvent{RMS: dbfs(math.Sqrt(a.sumSq / float64(a.n))), Peak: dbfs(float64(a.peak)),
		Envelope: a.env, Rate: in.Rate, Channels: max(in.Channels, 1), Dropped: dropped, Lost: a.lost}
	if ev.Envelope == nil {
		ev.Envelope = [][2]float64{}
	}
	*a = levelAgg{env: make([][2]float64, 0, len(a.env)), colMin: a.colMin, colMax: a.colMax, colN: a.colN}
	return ev
}

// dbfs converts a 16-bit amplitude to dB relative to full scale, floored
// at -120 (silence).
func dbfs(amp float64) float64 {
	if amp <= 0 {
		return -120
	}
	return math.Max(-120, math.Round(20*math.Log10(amp/32768)*10)/10)
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
