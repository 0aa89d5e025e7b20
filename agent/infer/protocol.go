package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// The wire types of the .eim socket protocol (docs/protocols/eim.md). The
// json tags are the model's own field names.

// Sensor types a model's hello reports in model_parameters.sensor
// (docs/protocols/eim.md §4.2).
const (
	SensorUnknown       = -1
	SensorMicrophone    = 1
	SensorAccelerometer = 2
	SensorCamera        = 3
	SensorPositional    = 4
)

// Anomaly blocks of model_parameters.has_anomaly; the visual ones answer
// with a grid instead of one score (docs/protocols/eim.md §4.2).
const (
	anomalyNone            = 0
	anomalyVisualGMM       = 3
	anomalyVisualPatchcore = 4
	anomalyVisualCustom    = 6
)

// Parameters are the model_parameters of a hello answer: what the model
// expects as input and what it answers with.
type Parameters struct {
	AxisCount          int      `json:"axis_count"`
	Frequency          float64  `json:"frequency"`
	HasAnomaly         int      `json:"has_anomaly"`
	HasObjectTracking  bool     `json:"has_object_tracking,omitempty"`
	InputFeaturesCount int      `json:"input_features_count"`
	ImageInputHeight   int      `json:"image_input_height"`
	ImageInputWidth    int      `json:"image_input_width"`
	ImageInputFrames   int      `json:"image_input_frames"`
	ImageChannelCount  int      `json:"image_channel_count"`
	ImageResizeMode    string   `json:"image_resize_mode,omitempty"`
	IntervalMS         float64  `json:"interval_ms"`
	LabelCount         int      `json:"label_count"`
	Sensor             int      `json:"sensor"`
	Labels             []string `json:"labels"`
	ModelType          string   `json:"model_type"`
	SliceSize          int      `json:"slice_size"`
	UseContinuousMode  bool     `json:"use_continuous_mode"`
	InferencingEngine  int      `json:"inferencing_engine"`
}

// Project is the Studio project a model was built from (the hello's
// project object).
type Project struct {
	ID            int    `json:"id"`
	Owner         string `json:"owner"`
	Name          string `json:"name"`
	DeployVersion int    `json:"deploy_version"`
	ImpulseID     int    `json:"impulse_id,omitempty"`
	ImpulseName   string `json:"impulse_name,omitempty"`
}

// Model is what a model says about itself in its hello answer.
type Model struct {
	Project Project    `json:"project"`
	Params  Parameters `json:"model_parameters"`
}

// SensorName names Params.Sensor as the reference SDKs do.
func (m Model) SensorName() string {
	switch m.Params.Sensor {
	case SensorMicrophone:
		return "microphone"
	case SensorAccelerometer:
		return "accelerometer"
	case SensorCamera:
		return "camera"
	case SensorPositional:
		return "positional"
	}
	return "unknown"
}

// VisualAnomaly reports whether the model answers with a visual anomaly
// grid (docs/protocols/eim.md §4.2).
func (m Model) VisualAnomaly() bool {
	switch m.Params.HasAnomaly {
	case anomalyVisualGMM, anomalyVisualPatchcore, anomalyVisualCustom:
		return true
	}
	return false
}

// Kind is the model type shown in /status: model_type, with visual
// anomaly detection named on its own (its model_type is classification).
func (m Model) Kind() string {
	if m.VisualAnomaly() {
		return "visual_anomaly"
	}
	if m.Params.ModelType == "" {
		return "classification" // older models leave it out (the Node SDK's default)
	}
	return m.Params.ModelType
}

// Box is one bounding box, object-tracking trace or visual anomaly grid
// cell, in pixels of the model's input.
type Box struct {
	Label    string  `json:"label"`
	Value    float64 `json:"value"`
	X        float64 `json:"x"`
	Y        float64 `json:"y"`
	Width    float64 `json:"width"`
	Height   float64 `json:"height"`
	ObjectID *int    `json:"object_id,omitempty"`
}

// Result is a classification answer's result object. Which fields are
// present depends on the model (docs/protocols/eim.md §5.2).
type Result struct {
	Classification    map[string]float64 `json:"classification,omitempty"`
	BoundingBoxes     []Box              `json:"bounding_boxes,omitempty"`
	ObjectTracking    []Box              `json:"object_tracking,omitempty"`
	VisualAnomalyGrid []Box              `json:"visual_anomaly_grid,omitempty"`
	VisualAnomalyMax  *float64           `json:"visual_anomaly_max,omitempty"`
	VisualAnomalyMean *float64           `json:"visual_anomaly_mean,omitempty"`
	Anomaly           *float64           `json:"anomaly,omitempty"`
	Freeform          [][]float64        `json:"freeform,omitempty"`
}

// Timing is the model's own time per stage, in milliseconds.
type Timing struct {
	DSP            float64 `json:"dsp"`
	Classification float64 `json:"classification"`
	Anomaly        float64 `json:"anomaly"`
	Postprocessing float64 `json:"postprocessing,omitempty"`
}

// Total is the model's whole time for one classification.
func (t Timing) Total() float64 { return t.DSP + t.Classification + t.Anomaly + t.Postprocessing }

// Answer is one successful classification.
type Answer struct {
	Result Result `json:"result"`
	Timing Timing `json:"timing"`
	Info   string `json:"info,omitempty"`
}

// errGarbage marks an answer that breaks the protocol: not JSON, another
// id, fields of the wrong type, numbers that are not finite. The process
// that sent it cannot be trusted to be in step any more.
var errGarbage = errors.New("garbage answer")

// ErrModel is wrapped by the errors a model reports itself (success:
// false): the process is in step, and the next classification may work.
var ErrModel = errors.New("model error")

// envelope is the part every answer shares.
type envelope struct {
	ID      *int            `json:"id"`
	Success *bool           `json:"success"`
	Error   string          `json:"error"`
	Result  json.RawMessage `json:"result"`
}

// decodeAnswer checks one framed answer against request id and decodes
// it into v (nil: only the envelope). A model's own refusal wraps
// ErrModel; anything malformed wraps errGarbage.
func decodeAnswer(b []byte, id int, v any) error {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%w: %v", errGarbage, err)
	}
	if env.ID == nil {
		// The model's own parse error has no id (docs/protocols/eim.md §3).
		if env.Error != "" {
			return fmt.Errorf("%w: the model could not parse a request: %s", errGarbage, clip(env.Error))
		}
		return fmt.Errorf("%w: no id", errGarbage)
	}
	if *env.ID != id {
		return fmt.Errorf("%w: answer to request %d while waiting for %d", errGarbage, *env.ID, id)
	}
	if env.Success == nil {
		return fmt.Errorf("%w: no success field", errGarbage)
	}
	if !*env.Success {
		if env.Error == "" {
			env.Error = "no reason given"
		}
		return fmt.Errorf("%w: %s", ErrModel, clip(env.Error))
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", errGarbage, err)
	}
	return nil
}

// check rejects an answer whose numbers are not finite scores (a model
// answering NaN is broken as surely as one answering text) or that carries
// nothing a model of this kind answers with.
func (a *Answer) check(m Model) error {
	bad := func(what string, x float64) error {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: %s is %v", errGarbage, what, x)
		}
		return nil
	}
	for k, v := range a.Result.Classification {
		if err := bad("classification["+strconv.Quote(k)+"]", v); err != nil {
			return err
		}
	}
	for _, list := range [][]Box{a.Result.BoundingBoxes, a.Result.ObjectTracking, a.Result.VisualAnomalyGrid} {
		for _, b := range list {
			for _, x := range []float64{b.Value, b.X, b.Y, b.Width, b.Height} {
				if err := bad(b.Label+" box", x); err != nil {
					return err
				}
			}
		}
	}
	for name, p := range map[string]*float64{"anomaly": a.Result.Anomaly,
		"visual_anomaly_max": a.Result.VisualAnomalyMax, "visual_anomaly_mean": a.Result.VisualAnomalyMean} {
		if p != nil {
			if err := bad(name, *p); err != nil {
				return err
			}
		}
	}
	for _, x := range []float64{a.Timing.DSP, a.Timing.Classification, a.Timing.Anomaly, a.Timing.Postprocessing} {
		if err := bad("timing", x); err != nil {
			return err
		}
	}
	r := a.Result
	if r.Classification == nil && r.BoundingBoxes == nil && r.VisualAnomalyMax == nil && r.Anomaly == nil &&
		r.Freeform == nil && m.Params.LabelCount > 0 {
		return fmt.Errorf("%w: the result holds neither classification, boxes nor an anomaly score", errGarbage)
	}
	return nil
}

// clip bounds a model's text before it reaches a log line or /status.
func clip(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
