package status

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// InferenceStatus is one on-device model (`inference[]`, agent/infer).
type InferenceStatus struct {
	Name   string `json:"name"`
	Sensor string `json:"sensor"`
	// State is idle (no subscriber), waiting (no model yet: downloading),
	// starting, running or failed (the last run failed; it is retried
	// with backoff).
	State  string       `json:"state"`
	Source string       `json:"source"` // file | studio
	Model  *ModelStatus `json:"model,omitempty"`
	// Counts: classifications, starts (model processes started), and the
	// failures by kind: crashes, timeouts, garbage (answers that broke the
	// protocol), model_errors (refusals), input_errors, io_errors, start
	// (starts that failed).
	Counts     map[string]uint64 `json:"counts"`
	Labels     []LabelStatus     `json:"labels"`
	Latency    LatencyStatus     `json:"latency"`
	LastResult time.Time         `json:"last_result,omitzero"`
	LastError  string            `json:"last_error,omitempty"`
	// ModelError is why the last download failed; LastCheck when Studio
	// was last asked (both absent for a local model).
	ModelError string    `json:"model_error,omitempty"`
	LastCheck  time.Time `json:"last_check,omitzero"`
	// ModelFailures counts model updates (downloads) that failed.
	ModelFailures uint64 `json:"model_failures,omitempty"`
}

// ModelStatus is the model file a stream runs and what it said about
// itself.
type ModelStatus struct {
	File    string   `json:"file"`
	SHA256  string   `json:"sha256"`
	Version int      `json:"version,omitempty"` // the Studio deployment, for a download
	Project string   `json:"project,omitempty"` // owner / name
	Type    string   `json:"type,omitempty"`    // classification, object_detection, visual_anomaly, …
	Sensor  string   `json:"sensor,omitempty"`  // the model's input: camera, microphone, accelerometer, …
	Labels  []string `json:"labels,omitempty"`
}

// LabelStatus is one label: how many results it led (a classification's
// top score, a detection's boxes) and its score in the newest result.
type LabelStatus struct {
	Label     string  `json:"label"`
	Count     uint64  `json:"count"`
	LastScore float64 `json:"last_score"`
}

// LatencyStatus is the classification latency histogram: Counts[i]
// results took at most Bounds[i] seconds (and more than the bound before);
// the last count is above every bound. ModelSeconds is what the model
// itself reported for the same classifications; the rest is the runner.
type LatencyStatus struct {
	Bounds       []float64 `json:"bounds_seconds"`
	Counts       []uint64  `json:"counts"`
	SumSeconds   float64   `json:"sum_seconds"`
	Count        uint64    `json:"count"`
	ModelSeconds float64   `json:"model_seconds"`
}

var (
	descInferRunning = prometheus.NewDesc("edge_agent_inference_running", "1 while the model runs, else 0.", []string{"model", "sensor"}, nil)
	descInferResults = prometheus.NewDesc("edge_agent_inference_classifications_total", "Classifications the model answered.", []string{"model"}, nil)
	descInferEvents  = prometheus.NewDesc("edge_agent_inference_events_total", "Model process starts and failures by kind (starts, crashes, timeouts, garbage, model_errors, input_errors, io_errors, start).", []string{"model", "event"}, nil)
	descInferLabel   = prometheus.NewDesc("edge_agent_inference_label_total", "Results a label led (top classification score, or a detection box).", []string{"model", "label"}, nil)
	descInferScore   = prometheus.NewDesc("edge_agent_inference_label_score", "The label's score in the newest result.", []string{"model", "label"}, nil)
	descInferLatency = prometheus.NewDesc("edge_agent_inference_latency_seconds", "Time from the request to the model's answer.", []string{"model"}, nil)
)

var inferenceDescs = []*prometheus.Desc{descInferRunning, descInferResults, descInferEvents, descInferLabel, descInferScore, descInferLatency}

// collectInference exports the models of s.
func collectInference(ch chan<- prometheus.Metric, s Snapshot) {
	for _, m := range s.Inference {
		running := 0.0
		if m.State == "running" {
			running = 1
		}
		ch <- prometheus.MustNewConstMetric(descInferRunning, prometheus.GaugeValue, running, m.Name, m.Sensor)
		ch <- prometheus.MustNewConstMetric(descInferResults, prometheus.CounterValue, float64(m.Counts["classifications"]), m.Name)
		keys := make([]string, 0, len(m.Counts))
		for k := range m.Counts {
			if k != "classifications" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			ch <- prometheus.MustNewConstMetric(descInferEvents, prometheus.CounterValue, float64(m.Counts[k]), m.Name, k)
		}
		for _, l := range m.Labels {
			ch <- prometheus.MustNewConstMetric(descInferLabel, prometheus.CounterValue, float64(l.Count), m.Name, l.Label)
			ch <- prometheus.MustNewConstMetric(descInferScore, prometheus.GaugeValue, l.LastScore, m.Name, l.Label)
		}
		buckets := map[float64]uint64{}
		var cum uint64
		for i, b := range m.Latency.Bounds {
			if i < len(m.Latency.Counts) {
				cum += m.Latency.Counts[i]
			}
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descInferLatency, m.Latency.Count, m.Latency.SumSeconds, buckets, m.Name)
	}
}
