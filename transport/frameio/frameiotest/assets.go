package frameiotest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxAssets bounds the assets the fake remembers.
const maxAssets = 1000

type createReq struct {
	Name     string `json:"name"`
	Filetype string `json:"filetype"`
	Filesize int64  `json:"filesize"`
	Offset   int64  `json:"offset"`
	Channel  int    `json:"channel"`
	Parts    int    `json:"parts"`
}

// handleCreate is POST /v2/devices/assets
// (docs/protocols/frameio-c2c.md §5.1). Media captured while the channel is
// paused (now − offset after the pause began) gets 409 Channel Paused
// (docs/protocols/frameio-c2c.md §5.3).
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	s.noteVersion(r)
	if !s.authorized(r) {
		detailed(w, http.StatusUnauthorized, "Not Authorized")
		return
	}
	var req createReq
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil ||
		req.Name == "" || req.Filetype == "" || req.Filesize <= 0 || req.Offset < 0 {
		detailed(w, http.StatusUnprocessableEntity, "Invalid asset")
		return
	}
	s.mu.Lock()
	s.stats.Creates++
	if len(s.createFaults) > 0 {
		f := s.createFaults[0]
		s.createFaults = s.createFaults[1:]
		if f.Status == http.StatusConflict && f.Message == "Channel Paused" {
			s.stats.Conflicts++
		}
		s.mu.Unlock()
		for k, v := range f.Header {
			w.Header()[k] = v
		}
		s.log.Info("frameio fake: asset create refused (scripted)", "name", req.Name, "status", f.Status)
		detailed(w, f.Status, f.Message)
		return
	}
	captured := time.Now().Add(-time.Duration(req.Offset) * time.Second)
	if s.paused && !captured.Before(s.pausedAt.Add(-time.Second)) {
		s.stats.Conflicts++
		s.mu.Unlock()
		s.log.Info("frameio fake: asset refused: channel paused", "name", req.Name)
		detailed(w, http.StatusConflict, "Channel Paused")
		return
	}
	n := req.Parts
	if n <= 0 {
		n = 1
	}
	if n > 10000 || int64(n) > req.Filesize {
		s.mu.Unlock()
		detailed(w, http.StatusUnprocessableEntity, "Invalid parts")
		return
	}
	a := &asset{Asset: Asset{ID: "asset-" + randHex(8), Name: req.Name, Filetype: req.Filetype, Filesize: req.Filesize,
		Offset: req.Offset, Channel: req.Channel, Parts: n, PutCounts: make([]int, n)},
		sig: randHex(12), parts: map[int][]byte{}}
	s.assets[a.ID] = a
	s.order = append(s.order, a.ID)
	if len(s.order) > maxAssets { // bounded for long `sim` runs
		delete(s.assets, s.order[0])
		s.order = s.order[1:]
	}
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/s3/%s/%d?X-Amz-Expires=86400&X-Amz-SignedHeaders=content-type%%3Bhost%%3Bx-amz-acl&X-Amz-Signature=%s",
			s.URL(), a.ID, i+1, a.sig)
	}
	if s.rewriteURLs != nil {
		urls = s.rewriteURLs(urls)
	}
	s.mu.Unlock()
	s.log.Info("frameio fake: asset created", "name", req.Name, "size", req.Filesize, "parts", n, "offset", req.Offset)
	w.Header().Set("x-ratelimit-limit", "100")
	w.Header().Set("x-ratelimit-remaining", "99")
	w.Header().Set("x-ratelimit-window", "60000")
	writeJSON(w, http.StatusOK, map[string]any{"id": a.ID, "name": a.Name, "filetype": a.Filetype,
		"filesize": a.Filesize, "project_id": s.projectID, "upload_urls": urls})
}

// handlePut is the fake presigned S3 PUT
// (docs/protocols/frameio-c2c.md §5.2): signature, Content-Type = filetype,
// x-amz-acl: private, an exact Content-Length (chunked → 501), no
// Authorization, and the part length from the ceil(size/parts) rule.
func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	part, err := strconv.Atoi(r.PathValue("part"))
	s.mu.Lock()
	a, ok := s.assets[id]
	if !ok || err != nil || part < 1 || part > a.Parts || r.URL.Query().Get("X-Amz-Signature") != a.sig {
		s.mu.Unlock()
		s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch")
		return
	}
	filetype, size, n := a.Filetype, a.Filesize, a.Parts
	fail := s.partFails > 0
	if fail {
		s.partFails--
	}
	var block chan struct{}
	if s.blockPart == part {
		block = s.blocked
	}
	s.mu.Unlock()
	switch {
	case len(r.TransferEncoding) > 0 || r.ContentLength < 0:
		s3Error(w, http.StatusNotImplemented, "NotImplemented")
		return
	case r.Header.Get("Authorization") != "":
		s3Error(w, http.StatusBadRequest, "InvalidArgument")
		return
	case r.Header.Get("Content-Type") != filetype || r.Header.Get("x-amz-acl") != "private":
		s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch")
		return
	}
	ps := (size + int64(n) - 1) / int64(n)
	want := min(ps, size-int64(part-1)*ps)
	if r.ContentLength != want {
		s3Error(w, http.StatusBadRequest, "IncompleteBody")
		return
	}
	if fail {
		_, _ = io.Copy(io.Discard, r.Body)
		s3Error(w, http.StatusInternalServerError, "InternalError")
		return
	}
	if block != nil {
		select {
		case s.partStarted <- part:
		default:
		}
		select {
		case <-block:
		case <-r.Context().Done():
		}
		// Cut the connection without an answer, like a server going away
		// mid-request.
		panic(http.ErrAbortHandler)
	}
	body := make([]byte, want) // Content-Length was checked against want
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return // a cut-off upload: the part was not received
	}
	s.mu.Lock()
	a.PutCounts[part-1]++
	if !a.Complete { // a repeat after completion changes nothing
		a.parts[part] = body
	}
	s.stats.PartPuts++
	done := !a.Complete && len(a.parts) == a.Parts
	var sum string
	if done {
		h := sha256.New()
		for i := 1; i <= a.Parts; i++ {
			h.Write(a.parts[i])
		}
		sum = hex.EncodeToString(h.Sum(nil))
		a.Complete, a.SHA256 = true, sum
		a.parts = nil // keep the fake's memory flat in long `sim` runs
	}
	name := a.Name
	s.mu.Unlock()
	if done {
		s.log.Info("frameio fake: asset complete", "name", name, "bytes", size, "sha256", sum[:16])
	}
	w.WriteHeader(http.StatusOK)
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, code)
}
