package infer

import (
	"sort"
	"sync"
	"time"
)

// LatencyBounds are the upper bounds (seconds) of the classification
// latency histogram: from a fast keyword spotter (a few ms) to a large
// detector on a Pi (seconds).
var LatencyBounds = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}

// stats are a stream's counters and per-label figures for /status and
// /metrics.
//
// Concurrency: safe for concurrent use (the stream's Run records, the
// status server reads).
type stats struct {
	mu        sync.Mutex
	counts    map[string]uint64 // classifications, starts, errors by kind
	labels    map[string]*LabelStat
	order     []string
	buckets   []uint64 // per LatencyBounds, plus +Inf; not cumulative
	sum       float64  // seconds, over all classifications
	modelSum  float64  // seconds the model itself reported (its timing)
	n         uint64
	last      time.Time
	lastErr   string
	lastErrAt time.Time
	lastCode  string
}

func newStats() *stats {
	return &stats{counts: map[string]uint64{}, labels: map[string]*LabelStat{},
		buckets: make([]uint64, len(LatencyBounds)+1)}
}

// LabelStat is one label: how many results it led (the top score of a
// classification, one per box of a detection, every anomaly score) and
// its score in the newest result.
type LabelStat struct {
	Label     string
	Count     uint64
	LastScore float64
}

func (st *stats) count(name string) {
	st.mu.Lock()
	st.counts[name]++
	st.mu.Unlock()
}

func (st *stats) setErr(code string, err error, at time.Time) {
	st.mu.Lock()
	st.lastCode, st.lastErr, st.lastErrAt = code, clip(err.Error()), at
	st.mu.Unlock()
}

// record adds one result: scores per label (in labels order), the model's
// answer and how long the exchange took.
func (st *stats) record(labels []string, scores []float64, a Answer, took time.Duration, now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.counts["classifications"]++
	st.n++
	st.last = now
	sec := took.Seconds()
	st.sum += sec
	st.modelSum += a.Timing.Total() / 1000
	i := sort.SearchFloat64s(LatencyBounds, sec)
	st.buckets[i]++
	top, best := -1, -1.0
	for i, l := range labels {
		ls := st.labels[l]
		if ls == nil {
			ls = &LabelStat{Label: l}
			st.labels[l] = ls
			st.order = append(st.order, l)
		}
		ls.LastScore = scores[i]
		if l == "anomaly" && i == len(labels)-1 && (a.Result.Anomaly != nil || a.Result.VisualAnomalyMax != nil) {
			ls.Count++
			continue
		}
		if a.Result.Classification != nil && scores[i] > best {
			top, best = i, scores[i]
		}
	}
	if top >= 0 {
		st.labels[labels[top]].Count++
	}
	for _, b := range a.Result.BoundingBoxes {
		if ls := st.labels[b.Label]; ls != nil {
			ls.Count++
		}
	}
}

// Histogram is a latency histogram: Counts[i] results took at most
// Bounds[i] seconds and more than Bounds[i-1]; the last count is above
// every bound.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Sum    float64
	Count  uint64
}

// Status is a stream's state for /status and /metrics.
type Status struct {
	Name, Sensor string
	State        string
	// Model is the running model (zero when none runs) and File the file
	// it runs.
	Model   *Model
	File    ModelFile
	Source  string // "file" or "studio"
	Models  ModelsStatus
	Counts  map[string]uint64 // classifications, starts, timeouts, garbage, crashes, model_errors, input_errors, io_errors, start
	Labels  []LabelStat
	Latency Histogram
	// ModelSeconds is the time the model itself reported over all
	// classifications; Latency.Sum minus it is the runner's overhead
	// (features, JSON, socket) plus the model's own parsing.
	ModelSeconds float64
	LastResult   time.Time
	LastError    string
	LastErrorAt  time.Time
}

// Status returns the stream's state.
func (s *Stream) Status() Status {
	s.mu.Lock()
	st := Status{Name: s.o.Name, Sensor: s.o.Sensor, State: s.state, File: s.file}
	if s.model != nil {
		m := *s.model
		st.Model = &m
	}
	s.mu.Unlock()
	st.Source = "studio"
	if s.models.Local() {
		st.Source = "file"
	}
	st.Models = s.models.Status()
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	st.Counts = make(map[string]uint64, len(s.stats.counts))
	for k, v := range s.stats.counts {
		st.Counts[k] = v
	}
	for _, l := range s.stats.order {
		st.Labels = append(st.Labels, *s.stats.labels[l])
	}
	st.Latency = Histogram{Bounds: LatencyBounds, Counts: append([]uint64(nil), s.stats.buckets...),
		Sum: s.stats.sum, Count: s.stats.n}
	st.ModelSeconds = s.stats.modelSum
	st.LastResult, st.LastError, st.LastErrorAt = s.stats.last, s.stats.lastErr, s.stats.lastErrAt
	return st
}
