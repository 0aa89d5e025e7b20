//go:build cgo

package audio

// #include <stdlib.h>
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gen2brain/malgo"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

const (
	// queueBlocks bounds the callback → Run queue (~1 s of 20 ms periods).
	// The callback never blocks: a full queue drops and counts.
	queueBlocks = 50
	// stallTimeout: a capture device that delivers nothing for this long is
	// treated as gone (ALSA does not always report an unplugged USB mic).
	stallTimeout = 2 * time.Second
)

// Source is a microphone. Info may be called at any time; Run is called by
// one goroutine at a time and owns the miniaudio context and device while it
// runs. The data callback runs on miniaudio's C thread; it only copies the
// PCM into a bounded channel (non-blocking, drops counted).
type Source struct {
	name string
	cfg  Config
	spec deviceSpec
	log  *slog.Logger

	backends []malgo.Backend
	procRoot string // /proc/asound: the cards that device names resolve against

	mu   sync.Mutex
	info sensors.Info

	dropped atomic.Uint64 // callback periods lost to a full queue
}

// New returns the sensor; the device is resolved and opened by Run, so a
// USB microphone plugged in later is found on the next attempt.
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	return newSource(name, cfg, env, []malgo.Backend{malgo.BackendAlsa}, ProcRoot)
}

func newSource(name string, cfg Config, env sensors.Env, backends []malgo.Backend, procRoot string) (*Source, error) {
	cfg.SetDefaults()
	if cfg.SampleRate < 8000 || cfg.SampleRate > 192000 {
		return nil, fmt.Errorf("microphone sensor %q: sample_rate %d out of range", name, cfg.SampleRate)
	}
	spec, err := parseDevice(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("microphone sensor %q: %w", name, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{
		name: name, cfg: cfg, spec: spec, backends: backends, procRoot: procRoot,
		log: log.With("sensor", name, "kind", "microphone"),
		info: sensors.Info{
			Name: name, Kind: "microphone", Class: sensors.Audio,
			Rate: float64(cfg.SampleRate), Channels: 1,
			MaxSampleLength: cfg.MaxSampleLength.D(),
		},
	}, nil
}

// Info describes the sensor.
func (s *Source) Info() sensors.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// Dropped counts callback periods lost because Run fell a second behind.
func (s *Source) Dropped() uint64 { return s.dropped.Load() }

// pick resolves cfg.Device to the PCM to open (see resolve); cards are the
// sound cards it was resolved against, for errors. A bare word that names no
// card is looked up among the PCMs of ALSA's configuration by ID, then by
// name (when one PCM has it), and is otherwise opened as given: a PCM
// defined in /etc/asound.conf need not carry a hint.
func (s *Source) pick(mctx malgo.Context) (choice, []card, error) {
	cards, err := readCards(s.procRoot)
	if err != nil {
		return choice{}, nil, err
	}
	c, ok, err := resolve(s.spec, cards)
	if ok || err != nil {
		return c, cards, err
	}
	pcms, err := configuredPCMs(mctx)
	if err != nil {
		return choice{}, cards, fmt.Errorf("list capture devices: %w", err)
	}
	var named []Device
	for _, p := range pcms {
		if p.ID == s.cfg.Device {
			return choice{pcm: p.ID, desc: fmt.Sprintf("%s (%s)", p.ID, p.Name)}, cards, nil
		}
		if p.Name == s.cfg.Device {
			named = append(named, p)
		}
	}
	switch len(named) {
	case 0:
		return choice{pcm: s.cfg.Device, desc: strconv.Quote(s.cfg.Device)}, cards, nil
	case 1:
		return choice{pcm: named[0].ID, desc: fmt.Sprintf("%s (%s)", named[0].ID, named[0].Name)}, cards, nil
	}
	ids := make([]string, len(named))
	for i, p := range named {
		ids[i] = p.ID
	}
	return choice{}, cards, retry.Permanent(fmt.Errorf("device %q names %d PCMs (%s): name one by its ID", s.cfg.Device, len(named), strings.Join(ids, ", ")))
}

// Run resolves and opens the device, sends 20 ms blocks until ctx ends (nil)
// or the device fails, stops or stalls (an error: the hub restarts it).
func (s *Source) Run(ctx context.Context, out chan<- sensors.Sample) error {
	mctx, err := malgo.InitContext(s.backends, malgo.ContextConfig{}, nil)
	if err != nil {
		return fmt.Errorf("microphone %s: init audio context (is libasound2 installed?): %w", s.name, err)
	}
	defer func() {
		_ = mctx.Uninit()
		mctx.Free()
	}()
	pick, cards, err := s.pick(mctx.Context)
	if err != nil {
		return fmt.Errorf("microphone %s: %w", s.name, err)
	}

	blocks := make(chan capture, queueBlocks)
	stopped := make(chan struct{}, 1)
	dcfg := malgo.DefaultDeviceConfig(malgo.Capture)
	dcfg.Capture.Format = malgo.FormatS16
	dcfg.Capture.Channels = 1
	// Capture at the device's own rate (0: miniaudio opens near 48 kHz and
	// reports what the device runs at) with ALSA's plug resampling off, and
	// convert in Go with a proper low-pass: hw: devices of USB microphones
	// refuse 16 kHz, and the plug layer's default converter is linear.
	dcfg.SampleRate = 0
	dcfg.Alsa.NoAutoResample = 1
	dcfg.PeriodSizeInMilliseconds = uint32(BlockDuration / time.Millisecond)
	if pick.pcm != "" { // nil opens ALSA's default PCM ("default" first)
		id, err := alsaDeviceID(pick.pcm)
		if err != nil {
			return retry.Permanent(fmt.Errorf("microphone %s: %w", s.name, err))
		}
		idC := C.CBytes(id[:]) // C memory: miniaudio reads the ID during init
		defer C.free(idC)
		dcfg.Capture.DeviceID = unsafe.Pointer(idC)
	}
	cb := malgo.DeviceCallbacks{
		Data: func(_, in []byte, _ uint32) {
			c := capture{at: time.Now(), pcm: append([]byte(nil), in...)}
			select {
			case blocks <- c:
			default:
				s.dropped.Add(1)
			}
		},
		Stop: func() {
			select {
			case stopped <- struct{}{}:
			default:
			}
		},
	}
	dev, err := malgo.InitDevice(mctx.Context, dcfg, cb)
	if err != nil {
		// The listing tells a typo from a card that is not there.
		return fmt.Errorf("microphone %s: open %s: %w; %s", s.name, pick.desc, err, describeCards(cards))
	}
	// Uninit stops the device and waits for miniaudio's thread, so no
	// callback runs after it returns.
	defer dev.Uninit()
	if dev.CaptureFormat() != malgo.FormatS16 || dev.CaptureChannels() != 1 {
		return retry.Permanent(fmt.Errorf("microphone %s: device gives format %v × %d channels, want s16 mono", s.name, dev.CaptureFormat(), dev.CaptureChannels()))
	}
	if err := dev.Start(); err != nil {
		return fmt.Errorf("microphone %s: start %s: %w", s.name, pick.desc, err)
	}
	native := int(dev.SampleRate())
	ck := newChunker(s.cfg.SampleRate, 1)
	if err := ck.resampleFrom(native); err != nil {
		return retry.Permanent(fmt.Errorf("microphone %s: %s: %w", s.name, pick.desc, err))
	}
	s.mu.Lock()
	s.info.NativeRate = float64(native)
	s.mu.Unlock()
	s.log.Info("microphone opened", "device", s.cfg.Device, "pcm", pick.desc, "rate_hz", s.cfg.SampleRate, "native_rate_hz", native)

	if err := pump(ctx, out, ck, blocks, stopped, stallTimeout); err != nil {
		return fmt.Errorf("microphone %s: %s: %w", s.name, pick.desc, err)
	}
	return nil
}
