package edgeimpulse

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// Model monitoring: with an on-device model attached (SetMonitor), the link
// announces it in a version-4 Hello in inference mode and answers Studio's
// model-monitoring messages as edge-impulse-linux-runner --monitor does
// (docs/protocols/eim.md §9): startInferenceStream / stopInferenceStream
// switch a stream of impulseRecord messages (each result with what was
// classified), and newModelAvailable makes the model fetch the newest
// deployment, answered with modelUpdateSuccess.

// InferenceInfo describes the running model to Studio (the inferenceInfo
// of a version-4 Hello and of modelUpdateSuccess).
type InferenceInfo struct {
	ProjectID         int    `json:"projectId"`
	ProjectOwner      string `json:"projectOwner"`
	ProjectName       string `json:"projectName"`
	DeploymentVersion int    `json:"deploymentVersion"`
	ModelType         string `json:"modelType"`
}

// Monitor is an on-device model whose results the link reports to Studio
// (agent/infer's Stream implements it).
type Monitor interface {
	// Results is the hub name of the model's results (sensors.Inference
	// samples).
	Results() string
	// InferenceInfo describes the running model; ok is false until one
	// has started.
	InferenceInfo() (info InferenceInfo, ok bool)
	// Loaded returns a channel closed at the next model (re)load, so that
	// a session that announced no model can reconnect to announce it.
	Loaded() <-chan struct{}
	// UpdateModel fetches the project's newest deployment and returns
	// once it runs (or why it does not).
	UpdateModel(ctx context.Context) (InferenceInfo, error)
}

// SetMonitor attaches the on-device model the link reports on. The agent
// calls it once, after New and before the link runs.
func (l *Link) SetMonitor(m Monitor) { l.monitor.Store(&m) }

func (l *Link) monitorOf() Monitor {
	if p := l.monitor.Load(); p != nil {
		return *p
	}
	return nil
}

// monitorState is a session's model-monitoring state.
type monitorState struct {
	announced atomic.Bool   // the Hello or a modelUpdateSuccess announced a model
	updating  atomic.Bool   // an update runs (updateModel)
	again     atomic.Bool   // newModelAvailable came during it: update once more
	records   atomic.Uint64 // impulseRecord index
	dropped   atomic.Uint64

	stream *inferRun // guarded by session.mu
}

// inferRun is one running inference stream.
type inferRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Device → server monitoring messages (docs/protocols/eim.md §9).

type availableRecords struct {
	FirstIndex     int `json:"firstIndex"`
	FirstTimestamp int `json:"firstTimestamp"`
	LastIndex      int `json:"lastIndex"`
	LastTimestamp  int `json:"lastTimestamp"`
}

type inferenceStreamStarted struct {
	InferenceStreamStarted bool `json:"inferenceStreamStarted"`
}

type inferenceStreamStopped struct {
	InferenceStreamStopped bool `json:"inferenceStreamStopped"`
}

type inferenceStreamFailed struct {
	InferenceStreamFailed bool   `json:"inferenceStreamFailed"`
	Error                 string `json:"error"`
}

type impulseRecordMsg struct {
	ImpulseRecord json.RawMessage `json:"impulseRecord"` // {result, timing} as the model answered
	Timestamp     int64           `json:"timestamp"`     // ms since the epoch
	Index         uint64          `json:"index"`
	RawData       *rawData        `json:"rawData,omitempty"`
}

type rawData struct {
	Type         string `json:"type"` // jpg | wav
	BufferBase64 string `json:"bufferBase64"`
}

type impulseRecordsResponse struct {
	ImpulseRecordsResponse bool   `json:"impulseRecordsResponse"`
	Error                  string `json:"error,omitempty"`
}

type modelUpdate struct {
	ModelUpdateSuccess bool           `json:"modelUpdateSuccess"`
	InferenceInfo      *InferenceInfo `json:"inferenceInfo,omitempty"`
	Error              string         `json:"error,omitempty"`
}

// errModelLoaded ends a session that announced no model once one runs:
// the next Hello announces it (Studio learns a device's mode from its
// Hello only).
var errModelLoaded = errors.New("on-device model loaded: reconnecting to announce it")

// watchModel ends the session when a model loads while the Hello announced
// none.
func (s *session) watchModel(ctx context.Context) error {
	m := s.l.monitorOf()
	for {
		// The channel first, then the check: a model that loaded between
		// the Hello and now is seen here, one that loads later closes ch.
		ch := m.Loaded()
		if _, ok := m.InferenceInfo(); ok && !s.mon.announced.Load() {
			return errModelLoaded
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
	}
}

// startInference answers startInferenceStream: results flow as
// impulseRecord messages until stopInferenceStream or the session's end.
// Without a model the answer is inferenceStreamStarted: false, as the
// reference client gives without its monitor.
func (s *session) startInference(ctx context.Context) {
	m := s.l.monitorOf()
	if m == nil {
		_ = s.send(ctx, inferenceStreamStarted{InferenceStreamStarted: false})
		return
	}
	s.mu.Lock()
	if s.mon.stream != nil {
		s.mu.Unlock()
		_ = s.send(ctx, inferenceStreamStarted{InferenceStreamStarted: true})
		return
	}
	sub, err := s.l.deps.Hub.Subscribe(m.Results(), sensors.SubscribeOptions{Policy: sensors.DropOldest, Queue: 4, Label: s.l.deps.Name})
	if err != nil {
		s.mu.Unlock()
		_ = s.send(ctx, inferenceStreamFailed{InferenceStreamFailed: true, Error: "model unavailable: " + err.Error()})
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	run := &inferRun{cancel: cancel, done: make(chan struct{})}
	s.mon.stream = run
	s.mu.Unlock()
	s.l.log.Info("inference stream started", "model", m.Results())
	s.l.deps.Stats.SetDetail("inference_stream", m.Results())
	_ = s.send(ctx, inferenceStreamStarted{InferenceStreamStarted: true})
	s.tasks.Go(func() {
		defer close(run.done)
		defer sub.Close()
		if failed := s.streamResults(sctx, sub); failed != "" {
			s.mu.Lock()
			if s.mon.stream == run {
				s.mon.stream = nil
			}
			s.mu.Unlock()
			s.l.deps.Stats.SetDetail("inference_stream", "")
			_ = s.send(ctx, inferenceStreamFailed{InferenceStreamFailed: true, Error: failed})
		}
	})
}

// stopInference answers stopInferenceStream (inferenceStreamStopped: true
// whether or not a stream ran, as the reference client answers).
func (s *session) stopInference(ctx context.Context) {
	if s.stopInferenceLocked() {
		s.l.log.Info("inference stream stopped")
	}
	_ = s.send(ctx, inferenceStreamStopped{InferenceStreamStopped: true})
}

// stopInferenceLocked stops a running stream and waits for it; callers
// must not hold s.mu (see stopSnapshotLocked).
func (s *session) stopInferenceLocked() bool {
	s.mu.Lock()
	run := s.mon.stream
	s.mon.stream = nil
	s.mu.Unlock()
	if run == nil {
		return false
	}
	run.cancel()
	<-run.done
	s.l.deps.Stats.SetDetail("inference_stream", "")
	return true
}

// streamResults sends every result as an impulseRecord until ctx ends; it
// returns a reason when the results stopped on their own.
func (s *session) streamResults(ctx context.Context, sub sensors.Subscription) string {
	for {
		select {
		case <-ctx.Done():
			return ""
		case smp, open := <-sub.C():
			if !open {
				return "the model's results stopped"
			}
			s.sendRecord(smp)
		}
	}
}

// sendRecord queues one result as an impulseRecord, or counts it dropped
// when the uplink is behind (a result is worth less than the next one).
func (s *session) sendRecord(smp sensors.Sample) {
	if !json.Valid(smp.Data) {
		return
	}
	msg := impulseRecordMsg{ImpulseRecord: smp.Data, Timestamp: smp.Time.UnixMilli(), Index: s.mon.records.Add(1) - 1}
	switch {
	case len(smp.Input) >= 2 && smp.Input[0] == 0xff && smp.Input[1] == 0xd8:
		msg.RawData = &rawData{Type: "jpg", BufferBase64: base64.StdEncoding.EncodeToString(smp.Input)}
	case len(smp.Input) > 0:
		// The reference runner sends the window's raw s16le PCM under
		// type wav (docs/protocols/eim.md §9).
		msg.RawData = &rawData{Type: "wav", BufferBase64: base64.StdEncoding.EncodeToString(smp.Input)}
	}
	b, err := EncodeMessage(s.enc, msg)
	if err != nil {
		return
	}
	select {
	case s.out <- outMsg{b: b}:
	default:
		n := s.mon.dropped.Add(1)
		s.l.deps.Stats.SetDetail("inference_records_dropped", fmt.Sprint(n))
	}
}

// recordAck handles impulseRecordAck: a refused record stops the stream,
// as the reference client stops sending then.
func (s *session) recordAck(ctx context.Context, ok bool, reason string) {
	if ok {
		return
	}
	s.l.logLimited(&s.l.warns.serverErr, "Studio refused an inference record; stopping the stream", "err", s.l.peer(reason))
	if s.stopInferenceLocked() {
		_ = s.send(ctx, inferenceStreamStopped{InferenceStreamStopped: true})
	}
}

// updateTimeout bounds a model update: the download, and the new model's
// start.
const updateTimeout = 10 * time.Minute

// updateModel answers newModelAvailable: the model fetches the newest
// deployment, and the answer says whether it now runs. One update at a
// time; requests during one are answered by one more update when it ends
// (it fetches the newest then), so every request gets an answer, even one
// that arrives between an answer and the end of its update.
func (s *session) updateModel(ctx context.Context) {
	m := s.l.monitorOf()
	if m == nil {
		s.l.log.Debug("newModelAvailable ignored: no on-device model")
		return
	}
	if !s.mon.updating.CompareAndSwap(false, true) {
		s.mon.again.Store(true)
		s.l.log.Info("newModelAvailable during an update: another update follows it")
		return
	}
	s.tasks.Go(func() {
		for {
			s.mon.again.Store(false)
			s.runUpdate(ctx, m)
			s.mon.updating.Store(false)
			// A request that came meanwhile found updating set: take it
			// over, unless a newer request already started its own update.
			if ctx.Err() != nil || !s.mon.again.Load() || !s.mon.updating.CompareAndSwap(false, true) {
				return
			}
		}
	})
}

// runUpdate runs one model update and answers it.
func (s *session) runUpdate(ctx context.Context, m Monitor) {
	s.l.log.Info("new model available in Studio; updating")
	uctx, cancel := context.WithTimeout(ctx, updateTimeout)
	defer cancel()
	info, err := m.UpdateModel(uctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.l.log.Error("model update failed", "err", err)
		_ = s.send(ctx, modelUpdate{ModelUpdateSuccess: false, Error: err.Error()})
		return
	}
	s.l.log.Info("model updated", "project", info.ProjectID, "version", info.DeploymentVersion)
	s.mon.announced.Store(true)
	_ = s.send(ctx, modelUpdate{ModelUpdateSuccess: true, InferenceInfo: &info})
}
