package v4l2

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/logx"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
)

// Source is a V4L2 camera. MJPEG frames go out as JPEG stills exactly as the
// camera made them (Huffman tables added when the camera left them out, no
// re-encode); YUYV frames are JPEG-encoded; H.264 buffers go out as access
// units with SPS/PPS in front of every keyframe.
//
// A camera that stops sending frames without an error (a wedged UVC camera)
// is the hub's watchdog's to catch: Source implements agent/hub.Watched
// with the configured first-frame and stall timeouts, and the hub closes
// and reopens the device.
//
// Concurrency: Run is called by the hub, one at a time; it opens the device,
// and closes it before it returns, so the device is held only while the hub
// has subscribers. Info, StallTimeouts and RequestKeyframe may be called
// from any goroutine at any time.
type Source struct {
	name string
	cfg  Config
	open Opener
	log  *slog.Logger
	warn *logx.Limited

	mu   sync.Mutex
	info sensors.Info
	dev  FrameSource // the open device while Run runs, else nil
	h264 bool        // dev was configured for H.264

	bad atomic.Uint64 // frames the driver could not use
}

// Option adjusts a Source; tests use WithOpener to inject a fake device.
type Option func(*Source)

// WithOpener replaces the device opener (default OpenDevice).
func WithOpener(o Opener) Option { return func(s *Source) { s.open = o } }

// NewSource returns a V4L2 source for cfg. Nothing is opened until Run.
func NewSource(name string, cfg Config, env sensors.Env, opts ...Option) *Source {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("sensor", name, "device", cfg.Device)
	class := sensors.Still
	if cfg.Format == "h264" {
		class = sensors.Video
	}
	s := &Source{
		name: name, cfg: cfg, open: OpenDevice, log: log, warn: logx.NewLimited(log, 30*time.Second),
		info: sensors.Info{Name: name, Kind: "v4l2", Class: class, Rate: cfg.FPS, Width: cfg.Width, Height: cfg.Height},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Info describes the camera; width, height and rate are the driver's real
// values once the device has been opened.
func (s *Source) Info() sensors.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// StallTimeouts gives the hub's watchdog (agent/hub.Watched) the
// configured first-frame and stall timeouts, the stall one stretched to
// three frame intervals at the rate in use (the driver's, once the device
// is open) for a camera slower than one frame a second. Zero fields take
// the defaults, so a Config built without SetDefaults is watched too.
func (s *Source) StallTimeouts() (firstFrame, stall time.Duration) {
	first := cmp.Or(s.cfg.FirstFrameTimeout.D(), DefaultFirstFrameTimeout)
	stall = cmp.Or(s.cfg.StallTimeout.D(), DefaultStallTimeout)
	if fps := s.Info().Rate; fps > 0 {
		stall = max(stall, time.Duration(3*float64(time.Second)/fps))
	}
	return first, stall
}

// BadFrames counts frames dropped because they were not usable (flagged
// corrupt by the driver, a broken JPEG, a short YUYV buffer, an H.264 buffer
// with no picture).
func (s *Source) BadFrames() uint64 { return s.bad.Load() }

// RequestKeyframe asks the camera's H.264 encoder for an IDR frame. It
// returns sensors.ErrNoKeyframeControl when the camera is not running H.264,
// is not open, or has no force-key-frame control.
func (s *Source) RequestKeyframe() error {
	s.mu.Lock()
	dev, isH264 := s.dev, s.h264
	s.mu.Unlock()
	if dev == nil || !isH264 {
		return sensors.ErrNoKeyframeControl
	}
	kf, ok := dev.(KeyframeForcer)
	if !ok {
		return sensors.ErrNoKeyframeControl
	}
	if err := kf.ForceKeyframe(); err != nil {
		return fmt.Errorf("v4l2 %s: force keyframe: %w", s.cfg.Device, err)
	}
	return nil
}

// Run opens the device, negotiates the format, and sends samples until ctx
// ends (nil) or the device fails (an error; the hub restarts it). A
// configuration the camera cannot satisfy (ErrNoFormat, ErrNoSize,
// ErrNotCapture) is returned at once as a permanent error (retry.Permanent)
// with the reason; everything else (a busy or absent node, a failed
// STREAMON, an unplug) is transient.
func (s *Source) Run(ctx context.Context, out chan<- sensors.Sample) error {
	dev, err := s.open(s.cfg.Device)
	if err != nil {
		return classify(fmt.Errorf("v4l2 open %s: %w", s.cfg.Device, err))
	}
	defer func() {
		s.mu.Lock()
		s.dev, s.h264 = nil, false
		s.mu.Unlock()
		if cerr := dev.Close(); cerr != nil {
			s.log.Warn("v4l2 close", "err", cerr)
		}
	}()
	offered, err := dev.Formats()
	if err != nil {
		return fmt.Errorf("v4l2 %s: formats: %w", s.cfg.Device, err)
	}
	want, err := choose(s.cfg, offered)
	if err != nil {
		// Another camera could be plugged in at the same path; still, no
		// amount of retrying makes this camera speak another format soon.
		return classify(fmt.Errorf("v4l2 %s: %w", s.cfg.Device, err))
	}
	got, err := dev.Configure(want)
	if err != nil {
		return classify(fmt.Errorf("v4l2 %s: configure %s: %w", s.cfg.Device, want, err))
	}
	if got.FourCC != want.FourCC {
		return classify(fmt.Errorf("v4l2 %s: asked for %s, driver chose %s: %w", s.cfg.Device, want.FourCC, got.FourCC, ErrNoFormat))
	}
	if got.Width <= 0 || got.Height <= 0 || got.FourCC == FourCCYUYV && got.Width%2 != 0 {
		return classify(fmt.Errorf("v4l2 %s: asked for %s, driver chose %dx%d: %w", s.cfg.Device, want, got.Width, got.Height, ErrNoSize))
	}
	if s.cfg.Width > 0 && s.cfg.Height > 0 && (got.Width != s.cfg.Width || got.Height != s.cfg.Height) {
		s.log.Warn("camera does not offer the configured size; using the nearest", "configured",
			fmt.Sprintf("%dx%d", s.cfg.Width, s.cfg.Height), "got", fmt.Sprintf("%dx%d", got.Width, got.Height))
	}
	if got.FPS <= 0 {
		got.FPS = want.FPS
	}
	s.mu.Lock()
	s.dev, s.h264 = dev, got.FourCC == FourCCH264
	s.info.Width, s.info.Height, s.info.Rate = got.Width, got.Height, got.FPS
	if got.FourCC == FourCCH264 {
		s.info.Class = sensors.Video
	} else {
		s.info.Class = sensors.Still
	}
	s.mu.Unlock()
	s.log.Info("camera open", "format", got.String())

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	frames := make(chan Frame, 4)
	errc := make(chan error, 1)
	go func() { errc <- dev.Run(runCtx, frames) }()

	p := &processor{fmt: got, warn: s.warn, bad: &s.bad}
	var seq uint64
	for {
		select {
		case fr := <-frames:
			smp, ok := p.process(fr)
			if !ok {
				continue
			}
			smp.Seq = seq
			seq++
			select {
			case out <- smp:
			case <-ctx.Done():
				cancel()
				<-errc
				return nil
			}
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("frame source stopped")
			}
			return fmt.Errorf("v4l2 %s: capture: %w", s.cfg.Device, err)
		case <-ctx.Done():
			cancel()
			<-errc
			return nil
		}
	}
}

// classify marks configuration mismatches permanent: retrying cannot make
// the camera offer another format or size, so the hub should report the
// reason instead of reopening the device with backoff.
func classify(err error) error {
	if errors.Is(err, ErrNoFormat) || errors.Is(err, ErrNoSize) || errors.Is(err, ErrNotCapture) {
		return retry.Permanent(err)
	}
	return err
}

// processor turns device frames into samples for one negotiated format.
// Used by Run's goroutine only. process reports false for a frame that
// yields no sample; unusable frames are also counted in bad.
type processor struct {
	fmt  Format
	warn *logx.Limited
	bad  *atomic.Uint64
	yuyv yuyvEncoder
	au   auAssembler
}

func (p *processor) process(fr Frame) (sensors.Sample, bool) {
	if fr.Corrupt {
		p.warn.Warn("driver flagged a frame as corrupt (V4L2_BUF_FLAG_ERROR); dropped", "bytes", len(fr.Data))
		p.bad.Add(1)
		return sensors.Sample{}, false
	}
	f := p.fmt
	if fr.Format.FourCC != 0 {
		f = fr.Format
	}
	t := fr.Time
	if t.IsZero() {
		t = time.Now()
	}
	smp := sensors.Sample{Class: sensors.Still, Time: t}
	if f.FPS > 0 {
		smp.Duration = time.Duration(float64(time.Second) / f.FPS)
	}
	switch f.FourCC {
	case FourCCMJPEG:
		if !mjpeg.IsJPEG(fr.Data) {
			p.warn.Warn("camera sent a frame that is not a complete JPEG; dropped", "bytes", len(fr.Data))
			p.bad.Add(1)
			return smp, false
		}
		smp.Data = mjpeg.EnsureDHT(fr.Data)
	case FourCCYUYV:
		jpg, err := p.yuyv.encode(fr.Data, f.Width, f.Height)
		if err != nil {
			p.warn.Warn("camera sent an unusable YUYV frame; dropped", "err", err)
			p.bad.Add(1)
			return smp, false
		}
		smp.Data = jpg
	case FourCCH264:
		au, key := p.au.assemble(fr.Data)
		if au == nil { // parameter sets only: cached for the next IDR
			return smp, false
		}
		smp.Class, smp.Data, smp.Keyframe = sensors.Video, au, key
	default:
		p.warn.Warn("camera sent an unexpected pixel format; dropped", "format", f.FourCC.String())
		p.bad.Add(1)
		return smp, false
	}
	return smp, true
}
