package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/agent/capture"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/sensors"
)

// Capture is one local capture: a sensor's samples over a window, written
// to a file in the console's capture directory, as `edge-agent sample`
// does, but through the agent's hub, so the sensor keeps serving its
// links meanwhile.
type Capture struct {
	ID      string  `json:"id"`
	Sensor  string  `json:"sensor"`
	Class   string  `json:"class"`
	Seconds float64 `json:"seconds"`
	// State is running, done, failed or cancelled; a failed or cancelled
	// capture keeps what it captured.
	State   string    `json:"state"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	// Covered is how much of the window was captured (seconds).
	Covered float64 `json:"covered"`
	Summary string  `json:"summary"`
	Bytes   int64   `json:"bytes"`
	// Frames counts the stills of a still camera's capture.
	Frames int `json:"frames,omitempty"`
	// Axes names a motion capture's columns (for the plot).
	Axes []string `json:"axes,omitempty"`
	// File is the download's name; URL where to get it.
	File        string `json:"file"`
	ContentType string `json:"content_type"`
	URL         string `json:"url"`
}

// Capture states.
const (
	CaptureRunning   = "running"
	CaptureDone      = "done"
	CaptureFailed    = "failed"
	CaptureCancelled = "cancelled"
)

// maxCaptureQueue bounds a capture's subscription queue (entries share the
// hub's samples; each costs a Sample header).
const maxCaptureQueue = 1 << 16

// captureName is what the directory holds: c<N>.<ext>.
var captureName = regexp.MustCompile(`^c[0-9]+\.(csv|wav|jpg|mjpeg|h264)$`)

// captures runs the local captures, one at a time, and keeps the last
// KeepCaptures on disk. The directory is the console's alone: captures
// from an earlier run are removed at start (they are for looking at and
// downloading now, not a store).
//
// Concurrency: safe for concurrent use; mu guards the list and every
// capture's fields. Each running capture has one goroutine, started by
// start and waited for by stopAll.
type captures struct {
	dir string
	hub sensors.Hub
	clk clock.Clock
	log *slog.Logger

	mu     sync.Mutex
	ctx    context.Context // from open; nil before, and then start refuses
	closed bool
	list   []*job // oldest first
	next   int
	wg     sync.WaitGroup
}

// job is one capture and its file.
type job struct {
	info   Capture
	path   string
	frames []int64
	cancel context.CancelFunc // nil once it ended
	done   chan struct{}      // closed when its goroutine has finished
}

func newCaptures(dir string, hub sensors.Hub, clk clock.Clock, log *slog.Logger) (*captures, error) {
	c := &captures{dir: dir, hub: hub, clk: clk, log: log}
	if dir == "" {
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("captures: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("captures: %w", err)
	}
	for _, e := range ents {
		if captureName.MatchString(e.Name()) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return c, nil
}

// open lets captures start, under ctx (Run's).
func (cs *captures) open(ctx context.Context) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.ctx = ctx
}

// stopAll cancels running captures, refuses new ones and waits.
func (cs *captures) stopAll() {
	cs.mu.Lock()
	cs.closed = true
	for _, c := range cs.list {
		if c.cancel != nil {
			c.cancel()
		}
	}
	cs.mu.Unlock()
	cs.wg.Wait()
}

func (cs *captures) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.list)
}

// errBusy: one capture at a time.
var errBusy = errors.New("a capture is running; wait for it or cancel it")

// start begins a capture of sensor for seconds (0: one still).
func (cs *captures) start(sensor string, seconds float64) (Capture, int, error) {
	if cs.dir == "" {
		return Capture{}, http.StatusServiceUnavailable, errors.New("captures are off: no capture directory")
	}
	in, ok := cs.hub.Info(sensor)
	if !ok {
		return Capture{}, http.StatusNotFound, fmt.Errorf("no sensor %q", sensor)
	}
	if math.IsNaN(seconds) || seconds < 0 || seconds > MaxCaptureSeconds {
		return Capture{}, http.StatusBadRequest, fmt.Errorf("seconds must be between 0 and %d", MaxCaptureSeconds)
	}
	switch in.Class {
	case sensors.Motion, sensors.Audio, sensors.Still, sensors.Video, sensors.Inference:
	default:
		return Capture{}, http.StatusBadRequest, fmt.Errorf("sensor %q produces %s, which cannot be captured", sensor, in.Class)
	}
	if seconds == 0 && in.Class != sensors.Still {
		return Capture{}, http.StatusBadRequest, fmt.Errorf("a %s capture needs seconds above 0 (0 is one still of a camera)", in.Class)
	}
	length := time.Duration(seconds * float64(time.Second))
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.ctx == nil || cs.closed {
		return Capture{}, http.StatusServiceUnavailable, errors.New("the console is not running")
	}
	for _, c := range cs.list {
		if c.info.State == CaptureRunning {
			return Capture{}, http.StatusConflict, errBusy
		}
	}
	cs.next++
	id := "c" + strconv.Itoa(cs.next)
	ext, ctype := capture.FileKind(in.Class, length)
	path := filepath.Join(cs.dir, id+ext)
	sub, err := cs.hub.Subscribe(sensor, sensors.SubscribeOptions{Queue: capture.QueueFor(in, length, maxCaptureQueue), Policy: sensors.NoDrop, Label: "console capture"})
	if err != nil {
		return Capture{}, http.StatusServiceUnavailable, err
	}
	w, err := capture.New(sub.Info, path, capture.Options{Length: length, Create: createPrivate})
	if err != nil {
		sub.Close()
		return Capture{}, http.StatusInternalServerError, err
	}
	now := cs.clk.Now()
	c := &job{path: path, info: Capture{ID: id, Sensor: sensor, Class: in.Class.String(), Seconds: seconds,
		State: CaptureRunning, Started: now, Axes: in.Axes, ContentType: ctype, URL: "/api/captures/" + id + "/file",
		File: sensor + "-" + now.UTC().Format("20060102-150405") + ext}}
	ctx, cancel := context.WithCancel(cs.ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	cs.pruneLocked()
	cs.list = append(cs.list, c)
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		defer close(c.done)
		defer cancel()
		cs.run(ctx, c, sub, w, length)
	}()
	cs.log.Info("console capture started", "capture", id, "sensor", sensor, "seconds", seconds)
	return c.info, http.StatusAccepted, nil
}

// pruneLocked deletes the oldest finished captures so that, with the one
// about to start, KeepCaptures remain.
func (cs *captures) pruneLocked() {
	for len(cs.list) >= KeepCaptures {
		i := -1
		for j, c := range cs.list {
			if c.info.State != CaptureRunning {
				i = j
				break
			}
		}
		if i < 0 {
			return
		}
		_ = os.Remove(cs.list[i].path)
		cs.list = append(cs.list[:i], cs.list[i+1:]...)
	}
}

// createPrivate makes a capture's file, 0600 and exclusively: the
// directory is the console's alone, and a name taken means a bug.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create capture: %w", err)
	}
	return f, nil
}

// run captures until the window is complete, ctx ends (cancelled), the
// sensor fails, or the time limit passes.
func (cs *captures) run(ctx context.Context, c *job, sub sensors.Subscription, w capture.Writer, length time.Duration) {
	defer sub.Close()
	limit := length*3/2 + 10*time.Second
	timer := clock.AfterTimer(cs.clk, limit)
	defer timer.Stop()
	err := capture.Feed(ctx, sub, w, capture.FeedOptions{Deadline: timer.C(), Progress: func() { cs.progress(c, w) }})
	state, runErr := CaptureDone, error(nil)
	switch {
	case err == nil:
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		state = CaptureCancelled
	case errors.Is(err, capture.ErrDeadline):
		state, runErr = CaptureFailed, fmt.Errorf("the sensor delivered %.2f of %.2f s within %s",
			w.Covered().Seconds(), length.Seconds(), limit)
	default: // capture.ErrHubClosed says it as the console did
		state, runErr = CaptureFailed, err
	}
	if err := w.Close(); err != nil && runErr == nil {
		state, runErr = CaptureFailed, fmt.Errorf("finish capture: %w", err)
	}
	if runErr == nil && sub.Overrun() {
		state, runErr = CaptureFailed, fmt.Errorf("the writer fell behind and %d samples were lost; the file is incomplete", sub.Dropped())
	}
	cs.progress(c, w)
	cs.mu.Lock()
	c.info.State, c.info.Ended, c.cancel = state, cs.clk.Now(), nil
	if runErr != nil {
		c.info.Error = runErr.Error()
	}
	if fi, err := os.Stat(c.path); err == nil {
		c.info.Bytes = fi.Size()
	}
	info := c.info
	cs.mu.Unlock()
	cs.log.Info("console capture ended", "capture", info.ID, "state", info.State, "summary", info.Summary, "err", info.Error)
}

// progress publishes the writer's progress.
func (cs *captures) progress(c *job, w capture.Writer) {
	cov, sum, fr := w.Covered().Seconds(), w.Summary(), w.Frames()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.info.Covered, c.info.Summary, c.frames = math.Round(cov*1000)/1000, sum, fr
	if n := len(fr); n > 0 {
		c.info.Frames = n - 1
	}
}

func (cs *captures) all() []Capture {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]Capture, 0, len(cs.list))
	for i := len(cs.list) - 1; i >= 0; i-- { // newest first
		out = append(out, cs.list[i].info)
	}
	return out
}

func (cs *captures) get(id string) (Capture, string, []int64, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.list {
		if c.info.ID == id {
			return c.info, c.path, c.frames, true
		}
	}
	return Capture{}, "", nil, false
}

// cancel stops a running capture and waits until it has closed its file
// (or ctx ends); the capture keeps what it got. A finished one is left as
// it is.
func (cs *captures) cancel(ctx context.Context, id string) (Capture, bool) {
	cs.mu.Lock()
	var found *job
	for _, c := range cs.list {
		if c.info.ID == id {
			found = c
			if c.cancel != nil {
				c.cancel()
			}
			break
		}
	}
	cs.mu.Unlock()
	if found == nil {
		return Capture{}, false
	}
	select {
	case <-found.done:
	case <-ctx.Done():
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return found.info, true
}

// remove deletes a finished capture and its file.
func (cs *captures) remove(id string) (int, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i, c := range cs.list {
		if c.info.ID != id {
			continue
		}
		if c.info.State == CaptureRunning {
			return http.StatusConflict, errors.New("the capture is running; cancel it first")
		}
		if err := os.Remove(c.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return http.StatusInternalServerError, fmt.Errorf("delete capture: %w", err)
		}
		cs.list = append(cs.list[:i], cs.list[i+1:]...)
		return http.StatusNoContent, nil
	}
	return http.StatusNotFound, fmt.Errorf("no capture %q", id)
}

// CaptureRequest is the body of POST /api/captures.
type CaptureRequest struct {
	Sensor  string  `json:"sensor"`
	Seconds float64 `json:"seconds"`
}

func (c *Console) handleCaptures(w http.ResponseWriter, r *http.Request) { writeJSON(w, c.caps.all()) }

func (c *Console) handleCaptureStart(w http.ResponseWriter, r *http.Request) {
	var req CaptureRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "want {\"sensor\": NAME, \"seconds\": N}: %v", err)
		return
	}
	info, code, err := c.caps.start(req.Sensor, req.Seconds)
	if err != nil {
		apiError(w, code, "%v", err)
		return
	}
	w.Header().Set("Location", "/api/captures/"+info.ID)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(info)
}

func (c *Console) handleCapture(w http.ResponseWriter, r *http.Request) {
	info, _, _, ok := c.caps.get(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "no capture %q", r.PathValue("id"))
		return
	}
	writeJSON(w, info)
}

// captureFile opens the file of the capture the request's path names
// ({id}) for a handler to send: it answers 404 for an unknown capture and
// 410 for a file that is gone. refuse looks at the capture first and, when
// the handler must not send it, answers the request itself and returns
// true. The caller closes the file.
func (c *Console) captureFile(w http.ResponseWriter, r *http.Request, refuse func(info Capture, frames []int64) bool) (Capture, []int64, *os.File, bool) {
	info, path, frames, ok := c.caps.get(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "no capture %q", r.PathValue("id"))
		return info, nil, nil, false
	}
	if refuse(info, frames) {
		return info, nil, nil, false
	}
	f, err := os.Open(path)
	if err != nil {
		apiError(w, http.StatusGone, "capture file: %v", err)
		return info, nil, nil, false
	}
	return info, frames, f, true
}

// handleCaptureFile is the download of a finished capture.
func (c *Console) handleCaptureFile(w http.ResponseWriter, r *http.Request) {
	info, _, f, ok := c.captureFile(w, r, func(info Capture, _ []int64) bool {
		if info.State == CaptureRunning {
			apiError(w, http.StatusConflict, "the capture is still running")
			return true
		}
		return false
	})
	if !ok {
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", info.ContentType)
	disp := "attachment"
	if r.URL.Query().Get("inline") == "1" {
		disp = "inline" // the page's player and plot
	}
	w.Header().Set("Content-Disposition", disp+`; filename="`+info.File+`"`)
	http.ServeContent(w, r, "", info.Ended, f)
}

// handleCaptureFrame is one JPEG of a still camera's capture.
func (c *Console) handleCaptureFrame(w http.ResponseWriter, r *http.Request) {
	var n int
	_, frames, f, ok := c.captureFile(w, r, func(info Capture, frames []int64) bool {
		var err error
		n, err = strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n+1 >= len(frames) || info.State == CaptureRunning {
			apiError(w, http.StatusNotFound, "no frame %q in capture %s (%d stills)", r.PathValue("n"), info.ID, max(len(frames)-1, 0))
			return true
		}
		return false
	})
	if !ok {
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.FormatInt(frames[n+1]-frames[n], 10))
	_, _ = io.Copy(w, io.NewSectionReader(f, frames[n], frames[n+1]-frames[n]))
}

func (c *Console) handleCaptureCancel(w http.ResponseWriter, r *http.Request) {
	info, ok := c.caps.cancel(r.Context(), r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "no capture %q", r.PathValue("id"))
		return
	}
	writeJSON(w, info)
}

func (c *Console) handleCaptureDelete(w http.ResponseWriter, r *http.Request) {
	code, err := c.caps.remove(r.PathValue("id"))
	if err != nil {
		apiError(w, code, "%v", err)
		return
	}
	w.WriteHeader(code)
}
