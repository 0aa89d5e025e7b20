// Package infer runs Edge Impulse models (.eim executables) on the hub's
// sensors. A Stream is a sensors.Source whose samples are a model's
// results (class sensors.Inference): the hub runs it like any sensor while
// it has subscribers, and it subscribes to its input sensor, builds the
// model's feature windows (features.go), has the model process classify
// them over its Unix socket (eim.go, docs/protocols/eim.md) and sends each
// result on. Links, rules and the CLI subscribe to a stream by its name.
//
// Models (models.go) says which model file runs: a local path, or Studio's
// newest deployment for the board's architecture, cached in the state dir
// with its hash and replaced atomically; the stream swaps the process
// between two classifications when it changes.
//
// Safety: the model runs as its own executable, with no shell, in its own
// process group, with its socket in a private directory under the runtime
// dir; each classification has a timeout. A model that crashes, hangs or
// answers garbage ends the stream's run with the reason, and the hub
// restarts it with backoff (shown in /status); the agent itself never
// depends on the model being well.
package infer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
)

// StreamOptions configure a Stream.
type StreamOptions struct {
	// Name is the stream's name on the hub; Sensor the sensor it reads.
	Name, Sensor string
	// Interval is a sliding window's stride (motion, audio outside
	// continuous mode); 0 is a quarter of the window.
	Interval time.Duration
	// Timeout bounds one classification (default 5 s).
	Timeout time.Duration
	// Process configures the model processes.
	Process ProcessOptions
	Clock   clock.Clock
	Logger  *slog.Logger
}

// Stream is one model on one sensor, as a source of results.
//
// Concurrency: the hub calls Run one call at a time; Info, Status,
// InferenceInfo, Loaded and UpdateModel may be called from any goroutine.
type Stream struct {
	o      StreamOptions
	hub    sensors.Hub
	models *Models

	mu      sync.Mutex
	info    sensors.Info
	model   *Model    // the running model's hello; nil when none runs
	file    ModelFile // the file it runs
	loaded  chan struct{}
	loadErr error  // the last start's failure
	loadSHA string // ... of this file
	state   string
	stats   *stats
}

// Stream states in /status.
const (
	StateIdle     = "idle"     // no subscriber
	StateWaiting  = "waiting"  // no model yet (downloading)
	StateStarting = "starting" // the model process is starting
	StateRunning  = "running"
	StateFailed   = "failed" // the last run failed; the hub retries
)

// NewStream returns the stream; nothing runs until the hub runs it.
func NewStream(h sensors.Hub, models *Models, o StreamOptions) *Stream {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Process.Clock, o.Process.Logger = o.Clock, o.Logger
	return &Stream{o: o, hub: h, models: models, loaded: make(chan struct{}), state: StateIdle,
		info:  sensors.Info{Name: o.Name, Kind: "eim", Class: sensors.Inference, Units: "score"},
		stats: newStats()}
}

// Info describes the stream: its Axes are the model's labels (and
// "anomaly" for a model with an anomaly score), once a model ran.
func (s *Stream) Info() sensors.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// Models is where the stream's model comes from.
func (s *Stream) Models() *Models { return s.models }

// errSwap ends one model's loop when the model was replaced.
var errSwap = errors.New("model replaced")

// Run runs the stream until ctx ends: it waits for a model, starts it,
// subscribes to the sensor and classifies; when the model is replaced it
// swaps the process between two classifications. It returns an error when
// the model failed (crashed, timed out, answered garbage, or does not fit
// the sensor); the hub runs it again with backoff.
func (s *Stream) Run(ctx context.Context, out chan<- sensors.Sample) error {
	for {
		err := s.runModel(ctx, out)
		if ctx.Err() != nil {
			s.setState(StateIdle)
			return nil
		}
		if !errors.Is(err, errSwap) {
			s.fail(err)
			return err
		}
	}
}

// runModel runs the current model until ctx ends, the model is replaced
// (errSwap) or it fails.
func (s *Stream) runModel(ctx context.Context, out chan<- sensors.Sample) error {
	file, changed, err := s.models.Current()
	if err != nil {
		s.setState(StateWaiting)
		s.noteError("waiting", err)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			return errSwap
		}
	}
	s.setState(StateStarting)
	proc, err := Start(ctx, file.Path, s.o.Process)
	if err != nil {
		s.stats.count("start")
		s.setLoadErr(file, err)
		return err
	}
	defer proc.Close()
	s.stats.count("starts")
	model := proc.Model()
	info, ok := s.hub.Info(s.o.Sensor)
	if !ok {
		err := fmt.Errorf("stream %s: sensor %q: %w", s.o.Name, s.o.Sensor, sensors.ErrUnknownSensor)
		s.setLoadErr(file, err)
		return err
	}
	ex, err := newExtractor(model, info, s.o.Interval)
	if err != nil {
		err = fmt.Errorf("stream %s: model %s: %w", s.o.Name, file.Name, err)
		s.setLoadErr(file, err)
		return err
	}
	sub, err := s.hub.Subscribe(s.o.Sensor, subscribeOptions(info, s.o.Name))
	if err != nil {
		s.setLoadErr(file, err)
		return fmt.Errorf("stream %s: %w", s.o.Name, err)
	}
	defer sub.Close()
	s.setLoaded(model, file)
	s.o.Logger.Info("model running", "stream", s.o.Name, "sensor", s.o.Sensor, "model", file.Name,
		"project", model.Project.Name, "version", model.Project.DeployVersion, "type", model.Kind(),
		"labels", model.Params.Labels)
	c := classifier{s: s, proc: proc, model: model, out: out, labels: axesOf(model)}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			s.o.Logger.Info("swapping to the new model", "stream", s.o.Name)
			return errSwap
		case smp, open := <-sub.C():
			if !open {
				return fmt.Errorf("stream %s: sensor %s's feed closed", s.o.Name, s.o.Sensor)
			}
			if err := ex.add(smp, func(w window) error { return c.classify(ctx, w) }); err != nil {
				if errors.Is(err, errInput) {
					s.stats.count("input_errors")
					s.noteError("input", err)
					continue
				}
				return err
			}
		}
	}
}

// errInput marks a sample the extractor could not use (a broken JPEG):
// counted, and the stream goes on.
var errInput = errors.New("unusable input")

// subscribeOptions sizes the stream's queue: stills newest-wins with room
// for one (classifying a stale frame helps nobody), audio and motion with
// room for a few seconds, so a slow classification does not cut the
// signal (a lost block restarts the window).
func subscribeOptions(info sensors.Info, label string) sensors.SubscribeOptions {
	o := sensors.SubscribeOptions{Policy: sensors.DropOldest, Label: "infer:" + label}
	switch info.Class {
	case sensors.Still:
		o.Queue = 2
	case sensors.Audio:
		o.Queue = 512
	default:
		o.Queue = max(64, int(4*info.Rate))
	}
	return o
}

// axesOf lists the scores a result carries: the labels, and "anomaly".
func axesOf(m Model) []string {
	out := append([]string(nil), m.Params.Labels...)
	if m.Params.HasAnomaly != anomalyNone {
		out = append(out, "anomaly")
	}
	return out
}

// classifier is one running model's classification step.
type classifier struct {
	s      *Stream
	proc   *Process
	model  Model
	out    chan<- sensors.Sample
	labels []string
	seq    uint64
	// warm is set after the first answer: the first classification of a
	// process may include the engine's warm-up (a GPU delegate, TensorRT
	// building its engine), which the reference runner gives an hour, so
	// it is bounded by the start timeout rather than the classification's.
	warm bool
}

// classify runs one window through the model and sends the result.
func (c *classifier) classify(ctx context.Context, w window) error {
	s := c.s
	timeout := s.o.Timeout
	if !c.warm {
		timeout = max(timeout, s.o.Process.withDefaults().StartTimeout)
	}
	start := s.o.Clock.Now()
	a, err := c.proc.Classify(ctx, w.features, w.continuous, timeout)
	if err == nil {
		c.warm = true
	}
	took := s.o.Clock.Now().Sub(start)
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, ErrModel):
		// The model refused this input and is still in step: report it
		// and go on.
		s.stats.count("model_errors")
		s.noteError("model", err)
		return nil
	case errors.Is(err, ErrTimeout):
		s.stats.count("timeouts")
		return fmt.Errorf("stream %s: %w", s.o.Name, err)
	case errors.Is(err, errGarbage):
		s.stats.count("garbage")
		return fmt.Errorf("stream %s: %w", s.o.Name, err)
	case errors.Is(err, ErrExited):
		s.stats.count("crashes")
		return fmt.Errorf("stream %s: %w", s.o.Name, err)
	case err != nil:
		s.stats.count("io_errors")
		return fmt.Errorf("stream %s: %w", s.o.Name, err)
	}
	scores := c.scores(a)
	data, err := json.Marshal(struct {
		Result Result `json:"result"`
		Timing Timing `json:"timing"`
	}{a.Result, a.Timing})
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.o.Name, err)
	}
	c.seq++
	s.stats.record(c.labels, scores, a, took, s.o.Clock.Now())
	smp := sensors.Sample{Class: sensors.Inference, Time: w.at, Seq: c.seq, Values: scores, Data: data,
		Input: w.input, Duration: w.span}
	select {
	case c.out <- smp:
	case <-ctx.Done():
	}
	return nil
}

// scores returns one score per axis: a label's classification score, or
// for object detection its best box (0 when none); the anomaly score last.
func (c *classifier) scores(a Answer) []float64 {
	out := make([]float64, len(c.labels))
	r := a.Result
	for i, l := range c.labels {
		switch {
		case l == "anomaly" && i == len(c.labels)-1 && c.model.Params.HasAnomaly != anomalyNone:
			switch {
			case r.VisualAnomalyMax != nil:
				out[i] = *r.VisualAnomalyMax
			case r.Anomaly != nil:
				out[i] = *r.Anomaly
			}
		case r.Classification != nil:
			out[i] = r.Classification[l]
		default:
			for _, b := range r.BoundingBoxes {
				if b.Label == l {
					out[i] = math.Max(out[i], b.Value)
				}
			}
		}
	}
	return out
}

func (s *Stream) setState(st string) {
	s.mu.Lock()
	s.state = st
	if st == StateIdle || st == StateWaiting {
		s.model = nil
	}
	s.mu.Unlock()
}

// setLoaded records the model now running and wakes whoever waits for it.
func (s *Stream) setLoaded(m Model, f ModelFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model, s.file, s.state = &m, f, StateRunning
	s.loadErr, s.loadSHA = nil, f.SHA256
	s.info.Axes = axesOf(m)
	s.info.Rate = 0
	if m.Params.IntervalMS > 0 {
		s.info.Rate = 1000 / m.Params.IntervalMS
	}
	s.info.Width, s.info.Height = m.Params.ImageInputWidth, m.Params.ImageInputHeight
	close(s.loaded)
	s.loaded = make(chan struct{})
}

// setLoadErr records that file could not be started (or fed) and wakes
// whoever waits for it.
func (s *Stream) setLoadErr(f ModelFile, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadErr, s.loadSHA = err, f.SHA256
	close(s.loaded)
	s.loaded = make(chan struct{})
}

func (s *Stream) fail(err error) {
	s.noteError("run", err)
	s.mu.Lock()
	s.state = StateFailed
	s.model = nil
	s.mu.Unlock()
	s.o.Logger.Warn("model stream failed", "stream", s.o.Name, "err", err)
}

func (s *Stream) noteError(code string, err error) {
	s.stats.setErr(code, err, s.o.Clock.Now())
}

// ----- edgeimpulse.Monitor -----

var _ edgeimpulse.Monitor = (*Stream)(nil)

// Results is the stream's hub name.
func (s *Stream) Results() string { return s.o.Name }

// InferenceInfo describes the running model for Studio.
func (s *Stream) InferenceInfo() (edgeimpulse.InferenceInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.model == nil {
		return edgeimpulse.InferenceInfo{}, false
	}
	return inferenceInfo(*s.model), true
}

func inferenceInfo(m Model) edgeimpulse.InferenceInfo {
	mt := m.Params.ModelType
	if mt == "" {
		mt = "classification"
	}
	return edgeimpulse.InferenceInfo{ProjectID: m.Project.ID, ProjectOwner: m.Project.Owner, ProjectName: m.Project.Name,
		DeploymentVersion: m.Project.DeployVersion, ModelType: mt}
}

// Loaded returns a channel closed at the next model start (or failed start).
func (s *Stream) Loaded() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loaded
}

// UpdateModel fetches the newest deployment and waits until the stream
// runs it (or could not start it). A model that is already the newest
// returns at once.
func (s *Stream) UpdateModel(ctx context.Context) (edgeimpulse.InferenceInfo, error) {
	f, _, err := s.models.Update(ctx)
	if err != nil {
		return edgeimpulse.InferenceInfo{}, fmt.Errorf("update model: %w", err)
	}
	for {
		s.mu.Lock()
		ch, model, sha, lerr := s.loaded, s.model, s.loadSHA, s.loadErr
		s.mu.Unlock()
		if sha == f.SHA256 {
			if lerr != nil {
				return edgeimpulse.InferenceInfo{}, fmt.Errorf("the new model does not run: %w", lerr)
			}
			if model != nil {
				return inferenceInfo(*model), nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return edgeimpulse.InferenceInfo{}, fmt.Errorf("update model: waiting for it to start: %w", ctx.Err())
		}
	}
}
