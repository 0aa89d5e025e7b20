package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/edge-agent/edge-agent/agent/capture"
	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
)

// Exit codes of `edge-agent sample` besides exitOK.
const (
	sampleFailed      = 1
	sampleUsage       = 2
	sampleInterrupted = 130 // like a shell after SIGINT; the file is still complete
)

// maxSampleQueue bounds the subscription queue (about 100 bytes per entry).
const maxSampleQueue = 1 << 18

// cmdSample implements `edge-agent sample -sensor NAME -seconds N`: it builds
// one configured sensor through the agent's factory, runs it through a hub
// subscription sized for the whole window (NoDrop, so a stalled writer fails
// loudly instead of writing a short file), and writes CSV, WAV, JPEG or
// H.264. SIGINT (ctx) ends the capture early; the file is finalised either
// way.
func cmdSample(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("sensor", "", "name of the configured sensor to capture (required)")
	seconds := fs.Float64("seconds", 10, "length of the capture in seconds (0, and the default for a still camera: one still)")
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	out := fs.String("o", "", "output file (default NAME.csv, .wav, .jpg or .h264; a .mjpeg name keeps all stills in one stream)")
	sysRoot := fs.String("sys-root", "/sys", "root of sysfs (for tests and containers)")
	devRoot := fs.String("dev-root", "/dev", "root of device nodes (for tests and containers)")
	if err := fs.Parse(args); err != nil {
		return sampleUsage
	}
	if *name == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: edge-agent sample -sensor NAME -seconds N [-config FILE] [-o FILE]")
		return sampleUsage
	}
	if *seconds < 0 || math.IsNaN(*seconds) || *seconds > 24*3600 {
		fmt.Fprintln(stderr, "sample: -seconds must be between 0 and 86400")
		return sampleUsage
	}
	src, log, ok := configuredSource(stderr, "sample", *cfgPath, *name, *sysRoot, *devRoot)
	if !ok {
		return sampleFailed
	}
	secondsSet := false
	fs.Visit(func(f *flag.Flag) { secondsSet = secondsSet || f.Name == "seconds" })
	if !secondsSet && src.Info().Class == sensors.Still {
		*seconds = 0 // a camera without -seconds: one still
	}
	window := time.Duration(*seconds * float64(time.Second))
	path := *out
	if path == "" {
		path = *name + defaultExt(src.Info().Class)
	}
	res, err := runCapture(ctx, src, captureOptions{window: window, path: path, log: log, progress: stderr})
	if res.summary != "" {
		fmt.Fprintf(stdout, "wrote %s: %s, %.2f s\n", path, res.summary, res.covered.Seconds())
	}
	switch {
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(stderr, "sample: interrupted; the file holds what was captured")
		return sampleInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "sample: %v\n", err)
		return sampleFailed
	}
	return exitOK
}

var errInterrupted = errors.New("interrupted")

type captureOptions struct {
	window   time.Duration
	path     string
	log      *slog.Logger
	progress io.Writer
	// limit is the wall-clock bound; 0 means 1.5 × window + 10 s.
	limit time.Duration
}

type captureResult struct {
	summary string
	covered time.Duration
}

// runCapture runs src through a private hub until the writer has its window,
// ctx ends (errInterrupted) or the time limit passes (a sensor that delivers
// too slowly or keeps failing).
func runCapture(ctx context.Context, src sensors.Source, o captureOptions) (captureResult, error) {
	h := hub.New(hub.Options{Logger: o.log})
	defer h.Close()
	ff := &failFast{Source: src, perm: make(chan error, 1)}
	if err := h.Add(ff); err != nil {
		return captureResult{}, err
	}
	info := src.Info()
	// The file first: a bad -o should not open the device.
	w, err := newSampleWriter(src.Info, o.path, o.window)
	if err != nil {
		return captureResult{}, err
	}
	sub, err := h.Subscribe(info.Name, sensors.SubscribeOptions{
		Queue: capture.QueueFor(info, o.window, maxSampleQueue), Policy: sensors.NoDrop, Label: "sample",
	})
	if err != nil {
		_ = w.Close()
		return captureResult{}, err
	}
	defer sub.Close()
	limit := o.limit
	if limit == 0 {
		limit = o.window*3/2 + 10*time.Second
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	prog := newProgress(o.progress, info.Name, o.window)

	runErr := capture.Feed(ctx, sub, w, capture.FeedOptions{Deadline: timer.C, Stop: ff.perm,
		Progress: func() { prog.update(w.Covered(), w.Summary()) }})
	switch {
	case ctx.Err() != nil && errors.Is(runErr, ctx.Err()):
		runErr = errInterrupted
	case errors.Is(runErr, capture.ErrHubClosed):
		runErr = errors.New("sensor hub closed")
	case errors.Is(runErr, capture.ErrDeadline):
		runErr = fmt.Errorf("sensor delivered %.2f of %.2f s within %s", w.Covered().Seconds(), o.window.Seconds(), limit)
		if st := h.Stats(); len(st) == 1 && st[0].LastError != "" {
			runErr = fmt.Errorf("%w; last sensor error: %s", runErr, st[0].LastError)
		}
	}
	prog.finish()
	res := captureResult{summary: w.Summary(), covered: w.Covered()}
	if err := w.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("finish %s: %w", o.path, err)
	}
	if runErr == nil && sub.Overrun() {
		runErr = fmt.Errorf("the writer fell behind and %d samples were lost; the file is incomplete", sub.Dropped())
	}
	return res, runErr
}

// failFast passes a source through to the hub and hands capture its first
// permanent error (a port that is not a tty, a camera without the asked
// format): the hub rightly stops retrying and waits for its subscribers to
// leave, and sample should then stop at once with the reason instead of
// waiting out its time limit. RequestKeyframe and StallTimeouts are
// forwarded because the hub finds them by type assertions on the source it
// holds (a stalled camera is restarted by the hub's watchdog during a
// sample, as under the daemon). Run is called by the
// hub's pump, one call at a time.
type failFast struct {
	sensors.Source
	perm chan error // capacity 1: the first permanent error
}

func (f *failFast) Run(ctx context.Context, out chan<- sensors.Sample) error {
	err := f.Source.Run(ctx, out)
	if retry.IsPermanent(err) {
		select {
		case f.perm <- err:
		default:
		}
	}
	return err
}

// StallTimeouts forwards the source's watchdog timeouts (zero, which turns
// the watchdog off, for a source that has none).
func (f *failFast) StallTimeouts() (firstSample, stall time.Duration) {
	if w, ok := f.Source.(hub.Watched); ok {
		return w.StallTimeouts()
	}
	return 0, 0
}

func (f *failFast) RequestKeyframe() error {
	if k, ok := f.Source.(sensors.KeyframeRequester); ok {
		return k.RequestKeyframe()
	}
	return sensors.ErrNoKeyframeControl
}
