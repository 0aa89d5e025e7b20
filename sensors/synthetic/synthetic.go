// Package synthetic provides sensors that need no hardware: a predictable
// 3-axis motion signal, a 16 kHz tone, a JPEG test pattern and an H.264 loop.
// They drive `edge-agent demo` and the tests of every link, so their output is
// a pure function of (seed, sequence number): a test can compute exactly what
// a link should have received.
package synthetic

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/h264"
)

//go:embed media/testsrc-320x240-15fps.h264
var defaultH264 []byte

// Signals.
const (
	SignalMotion = "motion"
	SignalAudio  = "audio"
	SignalCamera = "camera"
	SignalH264   = "h264"
)

// Config is the `synthetic:` block of a sensor.
type Config struct {
	Signal string `yaml:"signal"` // motion | audio | camera | h264
	// Motion.
	Axes        int       `yaml:"axes,omitempty"`
	Frequencies []float64 `yaml:"frequencies,omitempty"` // the first is the running rate
	Amplitude   float64   `yaml:"amplitude,omitempty"`   // m/s²
	Noise       float64   `yaml:"noise,omitempty"`       // peak of the uniform noise, m/s²
	Seed        uint64    `yaml:"seed,omitempty"`        // seed of the motion noise; the same seed gives the same values
	// Audio.
	SampleRate int     `yaml:"sample_rate,omitempty"`
	ToneHz     float64 `yaml:"tone_hz,omitempty"` // frequency of the audio tone
	// Camera and h264.
	FPS    float64 `yaml:"fps,omitempty"`
	Width  int     `yaml:"width,omitempty"`  // camera frame width
	Height int     `yaml:"height,omitempty"` // camera frame height
	// VisitorEvery makes a camera show a "visitor" (a white block in the
	// middle of the picture) for VisitorFor at the start of every period of
	// this length, so an image model has a scene that changes (the demo's
	// rule). 0: never.
	VisitorEvery conf.Duration `yaml:"visitor_every,omitempty"`
	VisitorFor   conf.Duration `yaml:"visitor_for,omitempty"` // default: a quarter of visitor_every
	// File is an H.264 Annex-B file to loop instead of the built-in clip.
	File string `yaml:"file,omitempty"`

	MaxSampleLength conf.Duration `yaml:"max_sample_length,omitempty"` // longest sample a link may record from this sensor
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Signal == "" {
		c.Signal = SignalMotion
	}
	if c.Axes == 0 {
		c.Axes = 3
	}
	if len(c.Frequencies) == 0 {
		c.Frequencies = []float64{100}
	}
	if c.Amplitude == 0 {
		c.Amplitude = 2
	}
	if c.SampleRate == 0 {
		c.SampleRate = 16000
	}
	if c.ToneHz == 0 {
		c.ToneHz = 440
	}
	if c.Width == 0 {
		c.Width = 320
	}
	if c.Height == 0 {
		c.Height = 240
	}
	if c.MaxSampleLength == 0 {
		c.MaxSampleLength = conf.Duration(5 * time.Minute)
	}
}

// Validate records every problem with the block.
func (c *Config) Validate(v *conf.Validator) {
	v.OneOf("signal", c.Signal, SignalMotion, SignalAudio, SignalCamera, SignalH264)
	if c.Axes < 1 || c.Axes > 16 {
		v.Errorf("axes", "must be between 1 and 16")
	}
	for i, f := range c.Frequencies {
		if !(f > 0 && f <= 10000) {
			v.Errorf(fmt.Sprintf("frequencies[%d]", i), "must be > 0 and <= 10000")
		}
	}
	if c.Noise < 0 {
		v.Errorf("noise", "must be >= 0")
	}
	if c.SampleRate < 1000 || c.SampleRate > 192000 {
		v.Errorf("sample_rate", "must be between 1000 and 192000")
	}
	if c.VisitorEvery < 0 || c.VisitorFor < 0 || (c.VisitorEvery > 0 && c.VisitorFor >= c.VisitorEvery) {
		v.Errorf("visitor_for", "visitor_every and visitor_for must be >= 0, and visitor_for shorter than visitor_every")
	}
	if c.FPS < 0 || c.FPS > 120 {
		v.Errorf("fps", "must be between 0 and 120 (0 is the default)")
	}
	if c.Width < 16 || c.Height < 16 || c.Width > 4096 || c.Height > 4096 {
		v.Errorf("width", "width and height must be between 16 and 4096")
	}
	if c.File != "" {
		if _, err := os.Stat(c.File); err != nil {
			v.Errorf("file", "%v", err)
		}
	}
}

// New returns a synthetic source.
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	switch cfg.Signal {
	case SignalMotion:
		return NewMotion(name, cfg), nil
	case SignalAudio:
		return NewAudio(name, cfg), nil
	case SignalCamera:
		return NewCamera(name, cfg), nil
	case SignalH264:
		return NewH264(name, cfg)
	}
	return nil, fmt.Errorf("synthetic sensor %q: unknown signal %q", name, cfg.Signal)
}

// pace calls emit for sample n = 0,1,2… at start + n/rate on clk, catching
// up in a burst after a stall (a late scheduler on a Pi Zero) rather than
// drifting. It sleeps at least a millisecond at a time, so a high rate is
// served in small batches instead of one timer per sample. It returns nil
// when ctx ends or emit returns false.
func pace(ctx context.Context, clk clock.Clock, rate float64, emit func(n uint64, at time.Time) bool) error {
	start := clk.Now()
	period := time.Duration(float64(time.Second) / rate)
	for n := uint64(0); ; n++ {
		at := start.Add(time.Duration(n) * period)
		if d := at.Sub(clk.Now()); d > 0 {
			if clk.Sleep(ctx, max(d, time.Millisecond)) != nil {
				return nil
			}
		}
		if !emit(n, at) {
			return nil
		}
	}
}

func send(ctx context.Context, out chan<- sensors.Sample, s sensors.Sample) bool {
	select {
	case out <- s:
		return true
	case <-ctx.Done():
		return false
	}
}

// Motion is a 3-axis (by default) accelerometer: axis i carries
// Amplitude·sin(2π·(i+1)·t) plus seeded uniform noise, and the last axis adds
// gravity (9.81) when there are three or more axes.
type Motion struct {
	info sensors.Info
	cfg  Config
}

// NewMotion returns a motion source.
func NewMotion(name string, cfg Config) *Motion {
	axes := make([]string, cfg.Axes)
	names := []string{"accX", "accY", "accZ"}
	for i := range axes {
		if cfg.Axes <= 3 {
			axes[i] = names[i]
		} else {
			axes[i] = fmt.Sprintf("axis%d", i)
		}
	}
	return &Motion{cfg: cfg, info: sensors.Info{
		Name: name, Kind: "synthetic", Class: sensors.Motion, Rate: cfg.Frequencies[0],
		Frequencies: append([]float64(nil), cfg.Frequencies...), Axes: axes, Units: "m/s2",
		MaxSampleLength: cfg.MaxSampleLength.D(),
	}}
}

// Info describes the sensor.
func (m *Motion) Info() sensors.Info { return m.info }

// Value is the exact reading of axis at sample n: what a test expects.
func (m *Motion) Value(n uint64, axis int) float64 {
	t := float64(n) / m.info.Rate
	v := m.cfg.Amplitude * math.Sin(2*math.Pi*float64(axis+1)*t)
	if m.cfg.Axes >= 3 && axis == m.cfg.Axes-1 {
		v += 9.81
	}
	if m.cfg.Noise > 0 {
		v += m.cfg.Noise * (2*unitNoise(m.cfg.Seed, n, axis) - 1)
	}
	return v
}

// unitNoise is a deterministic value in [0,1) from (seed, n, axis).
func unitNoise(seed, n uint64, axis int) float64 {
	h := fnv.New64a()
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], seed)
	binary.LittleEndian.PutUint64(b[8:], n)
	binary.LittleEndian.PutUint64(b[16:], uint64(axis))
	h.Write(b[:])
	return float64(h.Sum64()>>11) / float64(1<<53)
}

// Run emits rows at the configured rate until ctx ends.
func (m *Motion) Run(ctx context.Context, out chan<- sensors.Sample) error {
	return pace(ctx, clock.Real{}, m.info.Rate, func(n uint64, at time.Time) bool {
		row := make([]float64, m.cfg.Axes)
		for i := range row {
			row[i] = m.Value(n, i)
		}
		return send(ctx, out, sensors.Sample{Class: sensors.Motion, Time: at, Seq: n, Values: row})
	})
}

// Audio is a sine tone, s16 mono, delivered in 20 ms blocks.
type Audio struct {
	info sensors.Info
	cfg  Config
}

// NewAudio returns a tone source.
func NewAudio(name string, cfg Config) *Audio {
	return &Audio{cfg: cfg, info: sensors.Info{
		Name: name, Kind: "synthetic", Class: sensors.Audio, Rate: float64(cfg.SampleRate),
		Frequencies: []float64{float64(cfg.SampleRate)}, Axes: []string{"audio"}, Units: "wav",
		Channels: 1, MaxSampleLength: cfg.MaxSampleLength.D(),
	}}
}

// Info describes the sensor.
func (a *Audio) Info() sensors.Info { return a.info }

// PCM returns the sample value at frame index i: half-scale sine at ToneHz.
func (a *Audio) PCM(i uint64) int16 {
	t := float64(i) / float64(a.cfg.SampleRate)
	return int16(math.Round(16383 * math.Sin(2*math.Pi*a.cfg.ToneHz*t)))
}

// Run emits 20 ms blocks until ctx ends.
func (a *Audio) Run(ctx context.Context, out chan<- sensors.Sample) error {
	const blocksPerSecond = 50
	frames := a.cfg.SampleRate / blocksPerSecond
	return pace(ctx, clock.Real{}, blocksPerSecond, func(n uint64, at time.Time) bool {
		buf := make([]byte, 2*frames)
		base := n * uint64(frames)
		for i := 0; i < frames; i++ {
			binary.LittleEndian.PutUint16(buf[2*i:], uint16(a.PCM(base+uint64(i))))
		}
		return send(ctx, out, sensors.Sample{Class: sensors.Audio, Time: at, Seq: n, Data: buf,
			Duration: time.Second / blocksPerSecond})
	})
}

// Camera renders a JPEG test pattern: colour bars with a bar that moves one
// step per frame, so consecutive frames differ.
type Camera struct {
	info sensors.Info
	cfg  Config

	// mu guards the frame being drawn and the encoder's output buffer,
	// reused from frame to frame (Frame may be called concurrently).
	mu  sync.Mutex
	img *image.YCbCr
	buf []byte
}

// NewCamera returns a camera source (default 5 fps).
func NewCamera(name string, cfg Config) *Camera {
	if cfg.FPS == 0 {
		cfg.FPS = 5
	}
	return &Camera{cfg: cfg, info: sensors.Info{
		Name: name, Kind: "synthetic", Class: sensors.Still, Rate: cfg.FPS,
		Width: cfg.Width, Height: cfg.Height, MaxSampleLength: cfg.MaxSampleLength.D(),
	}}
}

// Info describes the sensor.
func (c *Camera) Info() sensors.Info { return c.info }

var bars = []color.RGBA{
	{192, 192, 192, 255}, {192, 192, 0, 255}, {0, 192, 192, 255}, {0, 192, 0, 255},
	{192, 0, 192, 255}, {192, 0, 0, 255}, {0, 0, 192, 255},
}

// Frame renders frame n as a JPEG (quality 75, 4:2:0). The picture is drawn
// straight into YCbCr planes, one row of each kind copied down the image,
// and encoded by camjpeg, so a frame costs the agent little more than its
// JPEG encode.
func (c *Camera) Frame(n uint64) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, h := c.cfg.Width, c.cfg.Height
	if c.img == nil {
		c.img = image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	}
	m := c.img
	bw := max(w/len(bars), 1)
	pos := int(n % uint64(w))
	split := h*3/4 + 1 // rows from here on are the dark strip with the moving bar
	bar := func(x int) (uint8, uint8, uint8) {
		col := bars[min(x/bw, len(bars)-1)]
		return color.RGBToYCbCr(col.R, col.G, col.B)
	}
	// The first row of the bars and of the strip, then copies.
	for x := range w {
		y, _, _ := bar(x)
		m.Y[x] = y
		v := uint8(16)
		if x >= pos && x < pos+w/16 {
			v = 255
		}
		if split < h {
			m.Y[split*m.YStride+x] = v // grey: Y equals R=G=B
		}
	}
	for y := 1; y < h; y++ {
		from := 0
		if y > split {
			from = split
		}
		if y != split {
			copy(m.Y[y*m.YStride:y*m.YStride+w], m.Y[from*m.YStride:from*m.YStride+w])
		}
	}
	cw, ch := (w+1)/2, (h+1)/2
	for cx := range cw {
		_, cb, cr := bar(2 * cx)
		m.Cb[cx], m.Cr[cx] = cb, cr
	}
	for cy := 1; cy < ch; cy++ {
		row := m.Cb[cy*m.CStride : cy*m.CStride+cw]
		rowr := m.Cr[cy*m.CStride : cy*m.CStride+cw]
		if 2*cy >= split { // the strip is grey: neutral chroma
			for i := range row {
				row[i], rowr[i] = 128, 128
			}
			continue
		}
		copy(row, m.Cb[:cw])
		copy(rowr, m.Cr[:cw])
	}
	if c.Visiting(n) {
		visitor(m, split)
	}
	out, err := camjpeg.EncodeYCbCr(c.buf[:0], m, 75)
	c.buf = out[:0]
	if err != nil {
		return nil, fmt.Errorf("synthetic camera: encode: %w", err)
	}
	return bytes.Clone(out), nil
}

// Visiting reports whether frame n shows the visitor (Config.VisitorEvery).
func (c *Camera) Visiting(n uint64) bool {
	every := c.cfg.VisitorEvery.D()
	if every <= 0 {
		return false
	}
	length := c.cfg.VisitorFor.D()
	if length <= 0 {
		length = every / 4
	}
	at := time.Duration(float64(n) / c.info.Rate * float64(time.Second))
	return at%every < length
}

// visitor draws a white block over the middle third of the bars (rows
// above split), luma and chroma.
func visitor(m *image.YCbCr, split int) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	x0, x1, y0, y1 := w/3, 2*w/3, h/6, min(split, h*2/3)
	for y := y0; y < y1; y++ {
		row := m.Y[y*m.YStride:]
		for x := x0; x < x1; x++ {
			row[x] = 235
		}
	}
	for cy := y0 / 2; cy < (y1+1)/2; cy++ {
		for cx := x0 / 2; cx < (x1+1)/2; cx++ {
			m.Cb[cy*m.CStride+cx], m.Cr[cy*m.CStride+cx] = 128, 128
		}
	}
}

// Run emits frames at the configured rate until ctx ends.
func (c *Camera) Run(ctx context.Context, out chan<- sensors.Sample) error {
	var ferr error
	err := pace(ctx, clock.Real{}, c.info.Rate, func(n uint64, at time.Time) bool {
		b, err := c.Frame(n)
		if err != nil {
			ferr = err
			return false
		}
		return send(ctx, out, sensors.Sample{Class: sensors.Still, Time: at, Seq: n, Data: b,
			Duration: time.Duration(float64(time.Second) / c.info.Rate)})
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// H264 loops an Annex-B clip split into access units at its frame rate. Every
// keyframe carries SPS and PPS. RequestKeyframe makes the next emitted unit
// the next keyframe of the loop (a jump to an IDR is always decodable).
type H264 struct {
	info  sensors.Info
	units []h264.AccessUnit
	keyq  atomic.Bool
}

// NewH264 loads the clip (cfg.File or the built-in 320x240 15 fps clip).
func NewH264(name string, cfg Config) (*H264, error) {
	data := defaultH264
	if cfg.File != "" {
		b, err := os.ReadFile(cfg.File)
		if err != nil {
			return nil, fmt.Errorf("synthetic h264 %q: %w", name, err)
		}
		data = b
	}
	units, err := h264.SplitAll(data)
	if err != nil {
		return nil, fmt.Errorf("synthetic h264 %q: %w", name, err)
	}
	// Start the loop at the first keyframe so every pass is decodable.
	for len(units) > 0 && !units[0].Keyframe {
		units = units[1:]
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("synthetic h264 %q: no keyframe in clip", name)
	}
	fps := cfg.FPS
	if fps == 0 {
		fps = 15
	}
	w, h := cfg.Width, cfg.Height
	if cfg.File == "" {
		w, h = 320, 240
	}
	return &H264{units: units, info: sensors.Info{
		Name: name, Kind: "synthetic", Class: sensors.Video, Rate: fps, Width: w, Height: h,
		MaxSampleLength: cfg.MaxSampleLength.D(),
	}}, nil
}

// Info describes the sensor.
func (v *H264) Info() sensors.Info { return v.info }

// Units returns the clip's access units (for tests).
func (v *H264) Units() []h264.AccessUnit { return v.units }

// RequestKeyframe makes the next emitted access unit a keyframe.
func (v *H264) RequestKeyframe() error {
	v.keyq.Store(true)
	return nil
}

// Run emits access units at the clip's frame rate until ctx ends.
func (v *H264) Run(ctx context.Context, out chan<- sensors.Sample) error {
	i := 0
	dur := time.Duration(float64(time.Second) / v.info.Rate)
	return pace(ctx, clock.Real{}, v.info.Rate, func(n uint64, at time.Time) bool {
		if v.keyq.Swap(false) && !v.units[i].Keyframe {
			for !v.units[i].Keyframe {
				i = (i + 1) % len(v.units)
			}
		}
		u := v.units[i]
		i = (i + 1) % len(v.units)
		return send(ctx, out, sensors.Sample{Class: sensors.Video, Time: at, Seq: n, Data: u.Data,
			Keyframe: u.Keyframe, Duration: dur})
	})
}
