package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/edge-agent/edge-agent/upload/spool"
)

// The uploads view (docs/API.md, "Uploads"): each link's spool with its
// queue, the item in flight and its progress, and the actions a user needs
// when an upload is stuck: send an item now, cancel one or all, and switch
// uploading between auto and manual. The spool does the work (and keeps it
// durable); this file only shows and steers it.

// MaxQueueShown bounds the items one queue lists (oldest first); a longer
// queue says how many more it holds.
const MaxQueueShown = 100

// maxItemText bounds an item's name and last error as shown.
const maxItemText = 300

// UploadQueue is a link's spool, given to the console by the agent.
type UploadQueue struct {
	Link  string
	Kind  string
	Spool *spool.Spool
}

// UploadItem is one queued item as the console shows it.
type UploadItem struct {
	ID string `json:"id"`
	// Name is the producer's name for it (a file name), or its kind.
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	// Age is seconds since it was queued (by the wall clock).
	Age         float64   `json:"age"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// InFlight marks the item being sent, since Started; Sent is how many
	// of its bytes went out (-1 unknown).
	InFlight bool      `json:"in_flight"`
	Started  time.Time `json:"started,omitzero"`
	Sent     int64     `json:"sent"`
	// Requested: a user asked to send it now, and it goes next.
	Requested bool `json:"requested"`
}

// UploadQueueView is GET /api/uploads/{link}.
type UploadQueueView struct {
	Link string `json:"link"`
	Kind string `json:"kind"`
	// Mode is "auto" or "manual" (Paused): in manual mode only the items
	// a user sends go out.
	Mode   string `json:"mode"`
	Paused bool   `json:"paused"`
	// Items and Bytes are the whole queue; Queue lists its first
	// MaxQueueShown items, More how many others there are.
	Items    int          `json:"items"`
	Bytes    int64        `json:"bytes"`
	MaxBytes int64        `json:"max_bytes"`
	Queue    []UploadItem `json:"queue"`
	More     int          `json:"more"`
	InFlight *UploadItem  `json:"in_flight"`
	// The spool's counters since the agent started.
	Delivered uint64 `json:"delivered"`
	Rejected  uint64 `json:"rejected"`
	Refused   uint64 `json:"refused"`
	Retries   uint64 `json:"retries"`
	Cancelled uint64 `json:"cancelled"`
}

// queues returns the links' spools (none without Options.Uploads).
func (c *Console) queues() []UploadQueue {
	if c.opts.Uploads == nil {
		return nil
	}
	var out []UploadQueue
	for _, q := range c.opts.Uploads() {
		if q.Spool != nil {
			out = append(out, q)
		}
	}
	return out
}

func (c *Console) queue(link string) (UploadQueue, bool) {
	for _, q := range c.queues() {
		if q.Link == link {
			return q, true
		}
	}
	return UploadQueue{}, false
}

// uploadView describes q's spool now.
func (c *Console) uploadView(q UploadQueue) UploadQueueView {
	now := c.clk.Now()
	st := q.Spool.Stats()
	v := UploadQueueView{Link: q.Link, Kind: q.Kind, Mode: "auto", Paused: q.Spool.Paused(), Items: st.Items, Bytes: st.Bytes,
		MaxBytes: q.Spool.MaxBytes(), Queue: []UploadItem{}, Delivered: st.Delivered, Rejected: st.Rejected,
		Refused: st.Refused, Retries: st.Retries, Cancelled: st.Cancelled}
	if v.Paused {
		v.Mode = "manual"
	}
	ents := q.Spool.List()
	v.Items = len(ents) // the list, not the counter read a moment before
	for _, e := range ents {
		it := UploadItem{ID: e.ID, Name: c.itemName(e.Item), Kind: e.Kind, Size: e.Size, Created: e.Created,
			Age: max(now.Sub(e.Created).Round(time.Second).Seconds(), 0), Attempts: e.Attempts,
			LastError: c.opts.Secrets.Peer(e.LastError, maxItemText), LastAttempt: e.LastAttempt, NextAttempt: e.NextAttempt,
			InFlight: e.InFlight, Started: e.Started, Sent: e.Sent, Requested: e.Requested}
		if it.InFlight {
			fl := it
			v.InFlight = &fl
		}
		if len(v.Queue) < MaxQueueShown {
			v.Queue = append(v.Queue, it)
		} else {
			v.More++
		}
	}
	return v
}

// itemName is the producer's name for it: the "name", "file_name" or
// "filename" of its metadata (a Frame.io asset, an Edge Impulse sample, a
// watched file), cleaned for showing; else its kind. The metadata's other
// fields are never shown (a producer may keep a credential's reference
// there); the progress record (upload URLs, which are credentials) neither.
func (c *Console) itemName(it spool.Item) string {
	var m struct {
		Name     string `json:"name"`
		FileName string `json:"file_name"`
		Filename string `json:"filename"`
	}
	_ = json.Unmarshal(it.Meta, &m)
	for _, n := range []string{m.Name, m.FileName, m.Filename} {
		if n != "" {
			return c.opts.Secrets.Peer(n, maxItemText)
		}
	}
	return it.Kind
}

func (c *Console) handleUploads(w http.ResponseWriter, r *http.Request) {
	out := []UploadQueueView{}
	for _, q := range c.queues() {
		out = append(out, c.uploadView(q))
	}
	writeJSON(w, out)
}

// withQueue runs h with the spool of the request's {link}, or answers 404.
func (c *Console) withQueue(h func(http.ResponseWriter, *http.Request, UploadQueue)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, ok := c.queue(r.PathValue("link"))
		if !ok {
			apiError(w, http.StatusNotFound, "no link %q with an upload spool", r.PathValue("link"))
			return
		}
		h(w, r, q)
	}
}

func (c *Console) handleUpload(w http.ResponseWriter, r *http.Request, q UploadQueue) {
	writeJSON(w, c.uploadView(q))
}

// answerUpload answers an action on q: its view after it, or the error.
func (c *Console) answerUpload(w http.ResponseWriter, q UploadQueue, what string, err error) {
	switch {
	case errors.Is(err, spool.ErrNotFound):
		apiError(w, http.StatusNotFound, "%s: no such item in %s's queue (sent, refused or cancelled meanwhile?)", what, q.Link)
	case err != nil:
		c.log.Error("console: upload action failed", "link", q.Link, "action", what, "err", err)
		apiError(w, http.StatusInternalServerError, "%s: %v", what, c.opts.Secrets.Err(err))
	default:
		c.log.Info("console: upload action", "link", q.Link, "action", what)
		writeJSON(w, c.uploadView(q))
	}
}

func (c *Console) handleUploadPause(w http.ResponseWriter, r *http.Request, q UploadQueue) {
	c.answerUpload(w, q, "pause", q.Spool.SetPaused(true))
}

func (c *Console) handleUploadResume(w http.ResponseWriter, r *http.Request, q UploadQueue) {
	c.answerUpload(w, q, "resume", q.Spool.SetPaused(false))
}

func (c *Console) handleUploadCancelAll(w http.ResponseWriter, r *http.Request, q UploadQueue) {
	_, err := q.Spool.CancelAll()
	c.answerUpload(w, q, "cancel all", err)
}

func (c *Console) handleUploadRetry(w http.ResponseWriter, r *http.Request, q UploadQueue) {
	c.answerUpload(w, q, "retry "+r.PathValue("id"), q.Spool.RetryNow(r.PathValue("id")))
}

func (c *Console) handleUploadCancel(w http.ResponseWriter, r *http.Request, q UploadQueue) {
	c.answerUpload(w, q, "cancel "+r.PathValue("id"), q.Spool.Cancel(r.PathValue("id")))
}

// uploadRoutes registers the uploads API with the access wrappers of
// routes.
func (c *Console) uploadRoutes(m *http.ServeMux, view, action func(http.HandlerFunc) http.Handler) {
	m.Handle("GET /api/uploads", view(c.handleUploads))
	m.Handle("GET /api/uploads/{link}", view(c.withQueue(c.handleUpload)))
	m.Handle("POST /api/uploads/{link}/pause", action(c.withQueue(c.handleUploadPause)))
	m.Handle("POST /api/uploads/{link}/resume", action(c.withQueue(c.handleUploadResume)))
	m.Handle("POST /api/uploads/{link}/cancel", action(c.withQueue(c.handleUploadCancelAll)))
	m.Handle("POST /api/uploads/{link}/items/{id}/retry", action(c.withQueue(c.handleUploadRetry)))
	m.Handle("POST /api/uploads/{link}/items/{id}/cancel", action(c.withQueue(c.handleUploadCancel)))
}
