package edgeimpulse

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/timesync"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/upload/spool"
)

const (
	// freqTolerance is how far 1000/interval may be from an offered
	// frequency and still select it (Studio sends e.g. 0.0625 ms exactly,
	// but 1000/62.5 = 16 ms comes back rounded by some UIs).
	freqTolerance = 0.01
	// maxQueue caps a NoDrop subscription's queue; the capture loop drains it
	// as fast as the disk takes rows, so the cap only has to cover jitter.
	maxQueue = 8192
	// firstSampleTimeout bounds the wait for a sensor to start delivering.
	firstSampleTimeout = 10 * time.Second
	// uploadWait bounds how long the session waits for the first upload
	// attempt before telling Studio the sample is queued.
	uploadWait = 30 * time.Second
)

// samplePlan is a validated sample request.
type samplePlan struct {
	req    SampleRequest
	sensor string
	info   sensors.Info
	freq   float64 // output rows per second (motion, audio)
	rows   int
}

// plan validates a request against the offered sensors: a known sensor, an
// interval that is not negative, a length within its maximum, and an
// interval matching one of its frequencies (0: the sensor's rate). The
// errors are sent to Studio as {sample:false, error}. DecodeMessage has
// refused NaN and the infinities already.
func (l *Link) plan(r SampleRequest) (samplePlan, error) {
	p := samplePlan{req: r}
	for _, o := range l.offered {
		if o.hello == r.Sensor || (r.Sensor == "" && len(l.offered) == 1) {
			p.sensor = o.name
		}
	}
	if p.sensor == "" {
		return p, fmt.Errorf("Invalid sensor: %s", r.Sensor)
	}
	info, ok := l.deps.Hub.Info(p.sensor)
	if !ok {
		return p, fmt.Errorf("Invalid sensor: %s", r.Sensor)
	}
	p.info = info
	if !strings.HasPrefix(r.Path, "/") || strings.Contains(r.Path, "..") || strings.ContainsAny(r.Path, "?#") {
		return p, fmt.Errorf("invalid ingestion path %q", r.Path)
	}
	if r.Interval < 0 {
		// It used to be read as 0 (the sensor's own rate); no sensor samples
		// backwards, so the request is wrong (docs/protocols/edge-impulse.md §4.4).
		return p, fmt.Errorf("invalid interval %v ms: negative", r.Interval)
	}
	if info.Class == sensors.Still {
		return p, nil
	}
	if !(r.Length > 0) {
		return p, fmt.Errorf("invalid sample length %v ms", r.Length)
	}
	// Compared as floats: a length of 1e300 ms overflows a Duration.
	if max := maxLength(info); r.Length*float64(time.Millisecond) > float64(max) {
		return p, fmt.Errorf("sample length %v ms is longer than the maximum %v for %s", r.Length, max, r.Sensor)
	}
	freqs := frequencies(info)
	if r.Interval == 0 {
		p.freq = info.Rate
	} else {
		want := 1000 / r.Interval
		for _, f := range freqs {
			if math.Abs(want-f) <= freqTolerance*f {
				p.freq = f
				break
			}
		}
		if p.freq == 0 {
			return p, fmt.Errorf("unsupported interval %v ms (%.4g Hz) for %s; supported: %v Hz", r.Interval, want, r.Sensor, freqs)
		}
	}
	if !(p.freq > 0) {
		return p, fmt.Errorf("sensor %s reports no sampling rate", r.Sensor)
	}
	p.rows = int(math.Round(p.freq * r.Length / 1000))
	if p.rows < 1 {
		return p, fmt.Errorf("sample length %v ms is shorter than one reading at %g Hz", r.Length, p.freq)
	}
	return p, nil
}

// handleSample answers a sample request at once and runs the capture in a
// session task. One sample runs at a time; snapshot streaming continues
// beside it (the Linux client's behaviour).
func (s *session) handleSample(ctx context.Context, r SampleRequest) {
	if !s.sampling.CompareAndSwap(false, true) {
		_ = s.send(ctx, sampleReply{Sample: false, Error: "Device is already sampling"})
		return
	}
	p, err := s.l.plan(r)
	if err != nil {
		s.sampling.Store(false)
		s.l.log.Info("sample request refused", "sensor", r.Sensor, "err", err)
		_ = s.send(ctx, sampleReply{Sample: false, Error: err.Error()})
		return
	}
	if err := s.send(ctx, sampleReply{Sample: true}); err != nil {
		s.sampling.Store(false)
		return
	}
	s.l.log.Info("sampling", "sensor", p.sensor, "label", r.Label, "length_ms", r.Length, "hz", p.freq)
	s.l.deps.Stats.SetDetail("sampling", p.sensor)
	s.tasks.Go(func() {
		err := s.runSample(ctx, p)
		// Free the device before the final message: Studio may ask for the
		// next sample as soon as it reads it.
		s.l.deps.Stats.SetDetail("sampling", "")
		s.sampling.Store(false)
		switch {
		case err == nil:
			s.l.log.Info("sample finished", "sensor", p.sensor, "label", r.Label)
			_ = s.send(ctx, sampleFinished{SampleFinished: true})
		case ctx.Err() != nil:
			s.l.log.Info("sample abandoned: session ended", "sensor", p.sensor)
		default:
			s.l.log.Warn("sample failed", "sensor", p.sensor, "label", r.Label, "err", err)
			_ = s.send(ctx, sampleReply{Sample: false, Error: err.Error()})
		}
	})
}

// runSample captures, stores and uploads one sample, sending the progress
// messages of docs/protocols/edge-impulse.md §4.6 up to sampleUploading (the
// caller sends the final sampleFinished or failure). A capture cut short by the
// session's end is discarded (Studio saw the device leave); once captured, the
// sample is in the spool before any upload is tried and is never lost.
func (s *session) runSample(ctx context.Context, p samplePlan) error {
	var (
		c   captured
		err error
	)
	if p.info.Class == sensors.Still {
		c, err = s.captureStill(ctx, p)
	} else {
		c, err = s.captureSeries(ctx, p)
	}
	if err != nil {
		return err
	}
	id, result, err := s.l.enqueue(c)
	if err != nil {
		return fmt.Errorf("store sample: %w", err)
	}
	if err := s.send(ctx, sampleUploading{SampleUploading: true}); err != nil {
		s.l.forget(id)
		return err
	}
	waited := clock.AfterTimer(s.l.deps.Clock, uploadWait)
	defer waited.Stop()
	select {
	case err = <-result:
	case <-ctx.Done():
		s.l.forget(id)
		return ctx.Err()
	case <-waited.C():
		s.l.forget(id)
		return errors.New("upload still queued behind earlier uploads; kept on the device and sent later")
	}
	if errors.Is(err, spool.ErrCancelled) || errors.Is(err, spool.ErrPaused) {
		return err // says itself whether the sample was removed or kept (deliver)
	}
	if err != nil {
		return fmt.Errorf("upload failed; kept on the device and retried later: %w", err)
	}
	return nil
}

// captured is a finished capture, ready for the spool: a still's multipart
// body in memory, or a series' signed file already in the spool's directory
// (pend), with the stamp of the moment the capture began.
type captured struct {
	meta  uploadMeta
	stamp timesync.Stamp
	body  io.Reader
	pend  *spool.Pending
}

// captureSeries records a motion or audio window through the hub into a
// signed acquisition file written straight into the spool (a pending item:
// on a board's SD card the recording is written once, not to a temp file
// and again into the spool), in three steps: openSeries plans the capture
// (queue size, subscription, file head), recordSeries captures the rows,
// finishSeries signs the file. On an error nothing is left behind.
func (s *session) captureSeries(ctx context.Context, p samplePlan) (captured, error) {
	c, err := s.openSeries(p)
	if err != nil {
		return captured{}, err
	}
	defer c.sub.Close()
	var meta uploadMeta
	err = s.recordSeries(ctx, c)
	if err == nil {
		meta, err = s.finishSeries(ctx, c)
	}
	if err != nil {
		c.pend.Abort()
		return captured{}, err
	}
	return captured{meta: meta, stamp: c.stamp, pend: c.pend}, nil
}

// seriesCapture is one series capture in progress: the sensor's
// subscription, the pending spool item and the signing writer over its
// file. It belongs to the sample task that runs captureSeries.
type seriesCapture struct {
	p     samplePlan
	sub   sensors.Subscription
	info  sensors.Info // the subscription's (the driver's current) description
	stamp timesync.Stamp
	pend  *spool.Pending
	f     *os.File // pend's file
	bw    *bufio.Writer
	aw    *AcqWriter
	pick  *picker
	row   []float64     // audio: the down-mixed row handed to pick
	span  time.Duration // the requested window
}

// openSeries is the plan step: it sizes the subscription's queue for the
// window (audio arrives in blocks of ≥ 10 ms), subscribes without drops,
// stamps the capture, creates the pending spool item and writes the
// acquisition head (acqHead) to it.
func (s *session) openSeries(p samplePlan) (*seriesCapture, error) {
	l := s.l
	length := time.Duration(p.req.Length * float64(time.Millisecond))
	perSec := p.info.Rate
	if p.info.Class == sensors.Audio {
		perSec = 100
	}
	q := min(int(perSec*length.Seconds())+64, maxQueue)
	sub, err := l.deps.Hub.Subscribe(p.sensor, sensors.SubscribeOptions{Policy: sensors.NoDrop, Queue: q, Label: l.deps.Name})
	if err != nil {
		return nil, fmt.Errorf("open sensor: %w", err)
	}
	c := &seriesCapture{p: p, sub: sub, info: sub.Info(), span: length, stamp: l.deps.Time.Now()}
	acq := l.acqHead(c.info, p.freq, c.stamp)
	if c.pend, err = l.deps.Spool.Create(); err != nil {
		sub.Close()
		return nil, fmt.Errorf("sample file: %w", err)
	}
	c.f = c.pend.File()
	c.bw = bufio.NewWriterSize(c.f, 64<<10)
	if c.aw, err = NewAcqWriter(c.bw, l.enc, acq, []byte(p.req.HMACKey)); err != nil {
		sub.Close()
		c.pend.Abort()
		return nil, err
	}
	c.pick = newPicker(c.info.Rate, p.freq, p.rows)
	c.row = make([]float64, len(acq.Sensors))
	return c, nil
}

// acqHead describes the acquisition file of a series from info at freq rows
// a second: audio as one integer column "audio" (units wav), motion as one
// column per axis (units N/A when the sensor states none), and iat only when
// the capture's stamp says the wall clock was synchronized
// (docs/protocols/edge-impulse.md §6.1: only from a clock that can be
// trusted). A board without a real-time clock boots with its last shutdown's
// time or 1970 until NTP sets it; a capture before that carries no iat,
// since the signature covers it and the request's HMAC key is not kept to
// sign it again once the time is known.
func (l *Link) acqHead(info sensors.Info, freq float64, stamp timesync.Stamp) Acquisition {
	acq := Acquisition{DeviceName: l.deps.Device.ID, DeviceType: l.hello().Hello.DeviceType, IntervalMs: 1000 / freq}
	if stamp.Synced {
		acq.IAT = stamp.Wall.Unix()
	}
	if info.Class == sensors.Audio {
		acq.Sensors = []AcqSensor{{Name: "audio", Units: "wav"}}
		acq.Ints = true
		return acq
	}
	units := cmp.Or(info.Units, "N/A")
	for _, a := range info.Axes {
		acq.Sensors = append(acq.Sensors, AcqSensor{Name: a, Units: units})
	}
	return acq
}

// recordSeries is the capture step: it feeds readings to the file until
// the plan's rows are written, sending sampleStarted with the first
// reading. It fails when the sensor delivers nothing within
// firstSampleTimeout, has not delivered the window within twice its length
// plus that slack, stops, or outruns the link (lost readings).
func (s *session) recordSeries(ctx context.Context, c *seriesCapture) error {
	p := c.p
	late := clock.AfterTimer(s.l.deps.Clock, firstSampleTimeout)
	defer late.Stop()
	started := false
	for !c.pick.done() {
		var smp sensors.Sample
		var open bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-late.C():
			if !started {
				return fmt.Errorf("sensor %s delivered nothing in %v", p.sensor, firstSampleTimeout)
			}
			return fmt.Errorf("sensor %s delivered %d of %d readings in time", p.sensor, c.pick.out, p.rows)
		case smp, open = <-c.sub.C():
		}
		if !open {
			return fmt.Errorf("sensor %s stopped during the sample", p.sensor)
		}
		if c.sub.Overrun() {
			return fmt.Errorf("sensor %s: the link fell behind and readings were lost", p.sensor)
		}
		if !started {
			started = true
			// Allow twice the window plus slack for a slow sensor before failing.
			late.Reset(2*c.span + firstSampleTimeout)
			if err := s.send(ctx, sampleStarted{SampleStarted: true}); err != nil {
				return err
			}
		}
		if err := c.feed(smp); err != nil {
			return err
		}
	}
	return nil
}

// feed hands one sample's rows to the picker: motion readings as they are,
// audio blocks frame by frame, the channels averaged into one int16 value.
func (c *seriesCapture) feed(smp sensors.Sample) error {
	if c.info.Class != sensors.Audio {
		return c.pick.feed(smp.Values, c.aw.WriteRow)
	}
	ch := max(c.info.Channels, 1)
	frames := len(smp.Data) / (2 * ch)
	for i := 0; i < frames && !c.pick.done(); i++ {
		var sum int
		for k := 0; k < ch; k++ {
			sum += int(int16(binary.LittleEndian.Uint16(smp.Data[2*(i*ch+k):])))
		}
		c.row[0] = float64(sum / ch)
		if err := c.pick.feed(c.row, c.aw.WriteRow); err != nil {
			return err
		}
	}
	return nil
}

// finishSeries is the finish step: it releases the sensor before the slow
// part, sends sampleProcessing, closes the writer and writes the signature
// over its placeholder.
func (s *session) finishSeries(ctx context.Context, c *seriesCapture) (uploadMeta, error) {
	c.sub.Close()
	if err := s.send(ctx, sampleProcessing{SampleProcessing: true}); err != nil {
		return uploadMeta{}, err
	}
	signed, err := c.aw.Close()
	if err == nil {
		err = c.bw.Flush()
	}
	if err == nil {
		_, err = c.f.WriteAt([]byte(signed.Signature), signed.Offset)
	}
	if err != nil {
		return uploadMeta{}, fmt.Errorf("sample file: %w", err)
	}
	ext, ctype := ".json", "application/json"
	if s.l.enc == CBOR {
		ext, ctype = ".cbor", "application/cbor"
	}
	return uploadMeta{Path: c.p.req.Path, FileName: fileLabel(c.p.req.Label) + ext, Label: c.p.req.Label,
		ContentType: ctype, Rows: signed.Rows, Sensor: c.p.sensor}, nil
}

// picker resamples a stream of rows at rate in to rate out by nearest
// preceding reading: output row j is input row ⌊j·in/out⌋. When the rates
// match it passes every row; below the running rate it decimates (Studio
// asked for a lower offered frequency); above it repeats readings
// (sample-and-hold), which only happens when a driver offers a frequency
// higher than it runs at.
type picker struct {
	ratio    float64 // in/out
	n        int     // input rows seen
	out, max int
}

func newPicker(in, out float64, rows int) *picker {
	r := 1.0
	if in > 0 && out > 0 {
		r = in / out
	}
	return &picker{ratio: r, max: rows}
}

func (p *picker) done() bool { return p.out >= p.max }

func (p *picker) feed(row []float64, emit func([]float64) error) error {
	for p.out < p.max && int(float64(p.out)*p.ratio+1e-9) == p.n {
		if err := emit(row); err != nil {
			return err
		}
		p.out++
	}
	p.n++
	return nil
}

// captureStill takes the camera's next frame and wraps it as the multipart
// `/files` upload the Linux client sends (docs/protocols/edge-impulse.md §5.4):
// one part `data` named <label>.jpg.
func (s *session) captureStill(ctx context.Context, p samplePlan) (captured, error) {
	l := s.l
	sub, err := l.deps.Hub.Subscribe(p.sensor, sensors.SubscribeOptions{Policy: sensors.DropOldest, Queue: 1, Label: l.deps.Name})
	if err != nil {
		return captured{}, fmt.Errorf("open camera: %w", err)
	}
	defer sub.Close()
	late := clock.AfterTimer(s.l.deps.Clock, firstSampleTimeout)
	defer late.Stop()
	var frame sensors.Sample
	select {
	case <-ctx.Done():
		return captured{}, ctx.Err()
	case <-late.C():
		return captured{}, fmt.Errorf("camera %s delivered no frame in %v", p.sensor, firstSampleTimeout)
	case smp, open := <-sub.C():
		if !open {
			return captured{}, fmt.Errorf("camera %s stopped", p.sensor)
		}
		frame = smp
	}
	stamp := l.deps.Time.Now()
	sub.Close()
	if err := s.send(ctx, sampleStarted{SampleStarted: true}); err != nil {
		return captured{}, err
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	var rb [12]byte
	_, _ = rand.Read(rb[:])
	if err := mw.SetBoundary("edge-agent-" + hex.EncodeToString(rb[:])); err != nil {
		return captured{}, err
	}
	name := fileLabel(p.req.Label) + ".jpg"
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="data"; filename=%q`, name))
	h.Set("Content-Type", "image/jpeg")
	pw, err := mw.CreatePart(h)
	if err == nil {
		_, err = pw.Write(frame.Data)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		return captured{}, fmt.Errorf("camera sample: %w", err)
	}
	meta := uploadMeta{Path: filesPath(p.req.Path), FileName: name, Label: p.req.Label,
		ContentType: mw.FormDataContentType(), Files: true, Sensor: p.sensor}
	return captured{meta: meta, stamp: stamp, body: &buf}, nil
}

// filesPath maps a sample path (/api/training/data) to the multipart endpoint
// of the same category (/api/training/files), honouring anomaly and testing
// (unlike the Linux client, docs/protocols/edge-impulse.md §7).
func filesPath(path string) string {
	if p, ok := strings.CutSuffix(path, "/data"); ok {
		return p + "/files"
	}
	return path
}

// fileLabel makes a label safe as a file name stem; the ingestion service
// infers the label from the leading [A-Za-z0-9 _-]+ of x-file-name.
func fileLabel(label string) string {
	var b strings.Builder
	for _, r := range label {
		if r == '/' || r == '\\' || r < 0x20 {
			r = '_'
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "sample"
	}
	return b.String()
}
