//go:build cgo

package audio

// #include <stdlib.h>
import "C"

import (
	"context"
	"fmt"
	"log/slog"
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
	log  *slog.Logger

	backends  []malgo.Backend
	allowNull bool // tests run on the null backend

	mu   sync.Mutex
	info sensors.Info

	dropped atomic.Uint64 // callback periods lost to a full queue
}

// New returns the sensor; the device is opened by Run.
func New(name string, cfg Config, env sensors.Env) (sensors.Source, error) {
	return newSource(name, cfg, env, []malgo.Backend{malgo.BackendAlsa}, false)
}

func newSource(name string, cfg Config, env sensors.Env, backends []malgo.Backend, allowNull bool) (*Source, error) {
	cfg.SetDefaults()
	if cfg.SampleRate < 8000 || cfg.SampleRate > 192000 {
		return nil, fmt.Errorf("microphone sensor %q: sample_rate %d out of range", name, cfg.SampleRate)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{
		name: name, cfg: cfg, backends: backends, allowNull: allowNull,
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

// pickDevice resolves cfg.Device against the backend's capture devices:
// "default" is the backend's default device, anything else must equal a
// device's ID or name. The null backend's device is refused unless allowed:
// it is what a missing libasound silently falls back to.
func (s *Source) pickDevice(mctx malgo.Context) (*malgo.DeviceInfo, error) {
	infos, err := mctx.Devices(malgo.Capture)
	if err != nil {
		return nil, fmt.Errorf("list capture devices: %w", err)
	}
	var pick *malgo.DeviceInfo
	for i := range infos {
		d := &infos[i]
		if s.cfg.Device == "default" {
			if pick == nil || (pick.IsDefault == 0 && d.IsDefault != 0) {
				pick = d
			}
		} else if s.cfg.Device == deviceIDString(d.ID) || s.cfg.Device == d.Name() {
			pick = d
			break
		}
	}
	if pick == nil {
		names := make([]string, 0, len(infos))
		for i := range infos {
			names = append(names, fmt.Sprintf("%s (%s)", deviceIDString(infos[i].ID), infos[i].Name()))
		}
		return nil, fmt.Errorf("capture device %q not found; have %v", s.cfg.Device, names)
	}
	if pick.Name() == nullDeviceName && !s.allowNull {
		return nil, retry.Permanent(fmt.Errorf("capture device is miniaudio's %q (no real audio backend): refusing to record silence", nullDeviceName))
	}
	// ALSA's "null" PCM produces unpaced zeros; it is what "default" finds
	// on a machine without a sound card. Naming it explicitly is allowed.
	if s.cfg.Device == "default" && deviceIDString(pick.ID) == "null" && !s.allowNull {
		return nil, retry.Permanent(fmt.Errorf("default capture device is ALSA's null PCM (no sound card?): refusing to record silence; name a device from `edge-agent sensors`"))
	}
	return pick, nil
}

// Run opens the device, sends 20 ms blocks until ctx ends (nil) or the
// device fails, stops or stalls (an error: the hub restarts it).
func (s *Source) Run(ctx context.Context, out chan<- sensors.Sample) error {
	mctx, err := malgo.InitContext(s.backends, malgo.ContextConfig{}, nil)
	if err != nil {
		return fmt.Errorf("microphone %s: init audio context (is libasound2 installed?): %w", s.name, err)
	}
	defer func() {
		_ = mctx.Uninit()
		mctx.Free()
	}()
	info, err := s.pickDevice(mctx.Context)
	if err != nil {
		return fmt.Errorf("microphone %s: %w", s.name, err)
	}

	blocks := make(chan capture, queueBlocks)
	stopped := make(chan struct{}, 1)
	dcfg := malgo.DefaultDeviceConfig(malgo.Capture)
	dcfg.Capture.Format = malgo.FormatS16
	dcfg.Capture.Channels = 1
	dcfg.SampleRate = uint32(s.cfg.SampleRate)
	dcfg.PeriodSizeInMilliseconds = uint32(BlockDuration / time.Millisecond)
	idC := C.CBytes(info.ID[:]) // C memory: miniaudio reads the ID during init
	defer C.free(idC)
	dcfg.Capture.DeviceID = unsafe.Pointer(idC)
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
		return fmt.Errorf("microphone %s: open %q: %w", s.name, info.Name(), err)
	}
	// Uninit stops the device and waits for miniaudio's thread, so no
	// callback runs after it returns.
	defer dev.Uninit()
	if dev.CaptureFormat() != malgo.FormatS16 || dev.CaptureChannels() != 1 {
		return retry.Permanent(fmt.Errorf("microphone %s: device gives format %v × %d channels, want s16 mono", s.name, dev.CaptureFormat(), dev.CaptureChannels()))
	}
	if err := dev.Start(); err != nil {
		return fmt.Errorf("microphone %s: start %q: %w", s.name, info.Name(), err)
	}
	s.log.Info("microphone opened", "device", info.Name(), "rate_hz", s.cfg.SampleRate)

	if err := pump(ctx, out, newChunker(s.cfg.SampleRate, 1), blocks, stopped, stallTimeout); err != nil {
		return fmt.Errorf("microphone %s: %q: %w", s.name, info.Name(), err)
	}
	return nil
}
