package command

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/h264"
	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
)

// stopGrace is how long a command gets after SIGTERM before it is killed and
// its pipes are closed.
const stopGrace = 3 * time.Second

// pcmBlock is the span of one audio sample: 20 ms, what a microphone source
// delivers too.
const pcmBlock = 20 * time.Millisecond

// ErrExited says the command ended by itself (the hub restarts it).
var ErrExited = errors.New("command exited")

// Source runs the command while the hub has subscribers.
//
// Concurrency: the hub calls Run one at a time; Info and StallTimeouts may
// be called at any time. Source does not implement sensors.KeyframeRequester (see the
// package comment).
type Source struct {
	name string
	cfg  Config
	log  *slog.Logger
	info sensors.Info
}

// NewSource returns a command source for cfg (already validated).
func NewSource(name string, cfg Config, env sensors.Env) *Source {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	info := sensors.Info{Name: name, Kind: "command", Rate: cfg.Rate, Width: cfg.Width, Height: cfg.Height}
	switch cfg.Output {
	case "h264":
		info.Class = sensors.Video
	case "mjpeg":
		info.Class = sensors.Still
	case "pcm":
		info.Class, info.Channels = sensors.Audio, 1
	}
	return &Source{name: name, cfg: cfg, log: log.With("sensor", name, "command", cfg.Argv[0]), info: info}
}

// Info describes the sensor; it never changes.
func (s *Source) Info() sensors.Info { return s.info }

// StallTimeouts gives the hub's watchdog (agent/hub.Watched) the configured
// first-frame and stall timeouts, the stall one stretched to three frame
// intervals for a command slower than one frame a second (PCM counts in
// 20 ms blocks, so 3 s always covers it). Zero fields take the defaults.
func (s *Source) StallTimeouts() (firstFrame, stall time.Duration) {
	first := cmp.Or(s.cfg.FirstFrameTimeout.D(), DefaultFirstFrameTimeout)
	stall = cmp.Or(s.cfg.StallTimeout.D(), DefaultStallTimeout)
	if s.cfg.Output != "pcm" && s.cfg.Rate > 0 {
		stall = max(stall, time.Duration(3*float64(time.Second)/s.cfg.Rate))
	}
	return first, stall
}

// Run starts the command and turns its stdout into samples until ctx ends
// (the command is stopped, Run returns nil) or the command exits or writes
// something that is not the configured format (Run returns an error).
// Everything the command wrote before it exited is delivered first.
func (s *Source) Run(ctx context.Context, out chan<- sensors.Sample) error {
	procCtx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.CommandContext(procCtx, s.cfg.Argv[0], s.cfg.Argv[1:]...)
	setProcessGroup(cmd)
	cmd.WaitDelay = stopGrace
	errLog := newStderrLog(s.log)
	cmd.Stderr = errLog
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("command %s: %w", s.cfg.Argv[0], err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("command %s: start: %w", s.cfg.Argv[0], err)
	}
	s.log.Info("command started", "pid", cmd.Process.Pid)

	perr := s.read(ctx, stdout, out)
	stop() // the parser gave up or ctx ended: stop the process if it still runs
	werr := cmd.Wait()
	killGroup(cmd)
	errLog.Flush()

	if ctx.Err() != nil {
		return nil
	}
	if perr != nil && !errors.Is(perr, io.EOF) {
		return fmt.Errorf("command %s: output is not %s: %w", s.cfg.Argv[0], s.cfg.Output, perr)
	}
	if werr != nil {
		return fmt.Errorf("command %s: %w: %w", s.cfg.Argv[0], ErrExited, werr)
	}
	return fmt.Errorf("command %s: %w with status 0", s.cfg.Argv[0], ErrExited)
}

// read parses stdout until EOF (io.EOF), a parse error, or ctx's end (nil).
func (s *Source) read(ctx context.Context, r io.Reader, out chan<- sensors.Sample) error {
	var seq uint64
	send := func(smp sensors.Sample) bool {
		smp.Seq = seq
		seq++
		select {
		case out <- smp:
			return true
		case <-ctx.Done():
			return false
		}
	}
	frame := time.Duration(float64(time.Second) / s.cfg.Rate)
	switch s.cfg.Output {
	case "h264":
		sp := h264.NewSplitter(r)
		for {
			au, err := sp.Next()
			if err != nil {
				return err
			}
			if !send(sensors.Sample{Class: sensors.Video, Time: time.Now(), Data: au.Data, Keyframe: au.Keyframe, Duration: frame}) {
				return nil
			}
		}
	case "mjpeg":
		sp := mjpeg.NewSplitter(r)
		for {
			jpg, err := sp.Next()
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return io.EOF
			}
			if err != nil {
				return err
			}
			if !send(sensors.Sample{Class: sensors.Still, Time: time.Now(), Data: mjpeg.EnsureDHT(jpg), Duration: frame}) {
				return nil
			}
		}
	case "pcm":
		rate := int(s.cfg.Rate)
		size := max(2, rate*int(pcmBlock/time.Millisecond)/1000*2)
		for {
			buf := make([]byte, size)
			n, err := io.ReadFull(r, buf)
			n &^= 1 // whole s16 samples only
			if n > 0 {
				d := time.Duration(n/2) * time.Second / time.Duration(rate)
				if !send(sensors.Sample{Class: sensors.Audio, Time: time.Now(), Data: buf[:n], Duration: d}) {
					return nil
				}
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return io.EOF
			}
			if err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown output %q", s.cfg.Output)
}
