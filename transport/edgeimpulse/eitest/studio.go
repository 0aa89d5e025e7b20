package eitest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The Studio REST routes the on-device runner uses to fetch a model
// (docs/protocols/eim.md §8), served beside ingestion: the API key's
// project, the newest deployment per target, and its download. Tests put a
// deployment in with SetDeployment and tell the device with
// NewModelAvailable.

// StudioProject is the id of the fake's one project.
const StudioProject = 1

// Download is one model download the fake served.
type Download struct {
	Target  string
	Version int
	Size    int
	At      time.Time
}

// studio is the fake Studio's state; it has its own lock so a slow model
// download does not hold the server's.
type studio struct {
	mu        sync.Mutex
	deploys   map[string]deployment // by target
	version   int                   // the project's deployment counter
	downloads []Download
	fault     DownloadFault
	held      int           // downloads FailDownloads' Hold has stalled
	release   chan struct{} // closed by Close: held downloads end
}

// DownloadFault makes model downloads fail the ways a broken or hostile
// Studio (or a proxy in between) can; the zero value serves them whole.
type DownloadFault struct {
	// Length is the Content-Length announced when > 0, a lie when it is
	// not the model's size; -1 announces none (the body goes chunked).
	Length int64
	// Cut sends only the model's first Cut bytes when > 0.
	Cut int
	// Hold keeps the response open after what was sent, sending nothing
	// more, until the client gives up or the server closes: a stall.
	// Without it the handler returns, and a body shorter than its
	// Content-Length closes the connection.
	Hold bool
	// Trickle, with Hold, sends the rest of the model one byte per
	// Trickle instead of nothing: a peer slow enough to hold a download
	// for days without ever going silent.
	Trickle time.Duration
}

// FailDownloads applies f to every model download from now on
// (DownloadFault{} serves them whole again).
func (s *Server) FailDownloads(f DownloadFault) {
	s.st.mu.Lock()
	s.st.fault = f
	s.st.mu.Unlock()
}

// HeldDownloads counts the downloads a Hold fault has stalled so far; Wait
// wakes when it grows.
func (s *Server) HeldDownloads() int {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.st.held
}

type deployment struct {
	version int
	model   []byte
}

func (s *Server) studioRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/api/projects", s.studioProjects)
	mux.HandleFunc("GET /v1/api/{project}/deployment", s.studioDeployment)
	mux.HandleFunc("GET /v1/api/{project}/deployment/download", s.studioDownload)
}

// SetDeployment makes model the newest deployment for target (e.g.
// runner-linux-aarch64) and returns its version (the project's counter,
// as Studio numbers deployments).
func (s *Server) SetDeployment(target string, model []byte) int {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if s.st.deploys == nil {
		s.st.deploys = map[string]deployment{}
	}
	s.st.version++
	s.st.deploys[target] = deployment{version: s.st.version, model: append([]byte(nil), model...)}
	return s.st.version
}

// Downloads lists the model downloads served.
func (s *Server) Downloads() []Download {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return append([]Download(nil), s.st.downloads...)
}

// NewModelAvailable tells the device that Studio built a new deployment
// (docs/protocols/eim.md §9).
func (s *Server) NewModelAvailable(version int) error {
	return s.Send(map[string]any{"newModelAvailable": true, "deploymentVersion": version})
}

// StartInferenceStream asks the device for its inference results.
func (s *Server) StartInferenceStream() error {
	return s.Send(map[string]any{"startInferenceStream": true})
}

// StopInferenceStream ends them.
func (s *Server) StopInferenceStream() error {
	return s.Send(map[string]any{"stopInferenceStream": true})
}

// studioAuth checks x-api-key as Studio does and answers 401 otherwise.
func (s *Server) studioAuth(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("x-api-key") != s.APIKey() {
		studioJSON(w, http.StatusUnauthorized, map[string]any{"success": false, "error": "Invalid API key"})
		return false
	}
	return true
}

func (s *Server) studioProject(w http.ResponseWriter, r *http.Request) bool {
	if id, err := strconv.Atoi(r.PathValue("project")); err != nil || id != StudioProject {
		studioJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "Project not found"})
		return false
	}
	return true
}

func (s *Server) studioProjects(w http.ResponseWriter, r *http.Request) {
	if !s.studioAuth(w, r) {
		return
	}
	studioJSON(w, http.StatusOK, map[string]any{"success": true,
		"projects": []map[string]any{{"id": StudioProject, "name": "sim-project", "owner": "sim"}}})
}

func (s *Server) studioDeployment(w http.ResponseWriter, r *http.Request) {
	if !s.studioAuth(w, r) || !s.studioProject(w, r) {
		return
	}
	target := r.URL.Query().Get("type")
	if target == "" {
		studioJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "Missing parameter type"})
		return
	}
	s.st.mu.Lock()
	d, ok := s.st.deploys[target]
	s.st.mu.Unlock()
	if !ok {
		studioJSON(w, http.StatusOK, map[string]any{"success": true, "hasDeployment": false})
		return
	}
	studioJSON(w, http.StatusOK, map[string]any{"success": true, "hasDeployment": true, "version": d.version})
}

func (s *Server) studioDownload(w http.ResponseWriter, r *http.Request) {
	if !s.studioAuth(w, r) || !s.studioProject(w, r) {
		return
	}
	target := r.URL.Query().Get("type")
	s.st.mu.Lock()
	d, ok := s.st.deploys[target]
	if ok {
		s.st.downloads = append(s.st.downloads, Download{Target: target, Version: d.version, Size: len(d.model), At: time.Now()})
	}
	f := s.st.fault
	s.st.mu.Unlock()
	if !ok {
		studioJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "No deployment for " + target})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	switch {
	case f.Length > 0:
		w.Header().Set("Content-Length", strconv.FormatInt(f.Length, 10))
	case f.Length == 0:
		w.Header().Set("Content-Length", strconv.Itoa(len(d.model)))
	}
	body, rest := d.model, []byte(nil)
	if f.Cut > 0 && f.Cut < len(body) {
		body, rest = body[:f.Cut], body[f.Cut:]
	}
	_, _ = w.Write(body)
	if f.Hold {
		if f.Trickle <= 0 {
			rest = nil
		}
		s.holdDownload(w, r, rest, f.Trickle)
	}
}

// holdDownload sends what was written and then nothing, or rest one byte
// per trickle, until the client goes away or Close.
func (s *Server) holdDownload(w http.ResponseWriter, r *http.Request, rest []byte, trickle time.Duration) {
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	s.st.mu.Lock()
	s.st.held++
	if s.st.release == nil {
		s.st.release = make(chan struct{})
	}
	release := s.st.release
	s.st.mu.Unlock()
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
	var tick <-chan time.Time
	if len(rest) > 0 {
		t := time.NewTicker(trickle)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-release:
			return
		case <-tick:
			if len(rest) == 0 {
				return
			}
			if _, err := w.Write(rest[:1]); err != nil || rc.Flush() != nil {
				return
			}
			rest = rest[1:]
		}
	}
}

// releaseHeld ends the downloads a Hold fault stalls, for Close.
func (s *studio) releaseHeld() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release == nil {
		s.release = make(chan struct{})
	}
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

func studioJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
