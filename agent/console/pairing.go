package console

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"sync"

	"github.com/edge-agent/edge-agent/transport/frameio"
)

// Frame.io pairing in the browser (docs/API.md, "Frame.io pairing"): the
// same state machine as `edge-agent pair` (frameio.Pairing), one per
// frameio link, started, watched and cancelled through the API; and
// unpairing. The tokens go where the link reads them, so the running link
// picks them up without a restart, as it does after `edge-agent pair`.

// FrameIOLink is a frameio link the console can pair, given by the agent.
type FrameIOLink struct {
	Link string
	// Config is the link's block; its client credentials are what pairing
	// presents.
	Config frameio.Config
	// TokenPath is where the link reads its tokens (frameio.TokenPath).
	TokenPath string
}

// PairView is GET /api/frameio/{link}: the link's pairing as the running
// link reports it, and the console's pairing run.
type PairView struct {
	Link string `json:"link"`
	// Paired: a token file is there. LinkPairing is the link's own word
	// (its /status detail "pairing": paired, unpaired, re-pair needed);
	// Project and AuthorizedBy name the pairing, from this run's result or
	// from what the running link last read from Frame.io.
	Paired       bool   `json:"paired"`
	LinkPairing  string `json:"link_pairing,omitempty"`
	Project      string `json:"project,omitempty"`
	AuthorizedBy string `json:"authorized_by,omitempty"`
	// Pairing is the run started from the console (state idle when none).
	Pairing frameio.PairStatus `json:"pairing"`
}

// pairings holds one frameio.Pairing per link, made at first use and
// made again when the link's config changed (a reload) while none runs.
//
// Concurrency: guarded by mu; the Pairings are safe for concurrent use.
type pairings struct {
	mu  sync.Mutex
	all map[string]*pairEntry
}

type pairEntry struct {
	link FrameIOLink
	p    *frameio.Pairing
}

func (c *Console) frameioLinks() []FrameIOLink {
	if c.opts.FrameIO == nil {
		return nil
	}
	return c.opts.FrameIO()
}

// pairing returns link's state machine, or false when no frameio link has
// that name.
func (c *Console) pairing(link string) (*frameio.Pairing, FrameIOLink, bool) {
	var fl FrameIOLink
	found := false
	for _, l := range c.frameioLinks() {
		if l.Link == link {
			fl, found = l, true
			break
		}
	}
	if !found {
		return nil, fl, false
	}
	ps := &c.pairs
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.all == nil {
		ps.all = map[string]*pairEntry{}
	}
	e := ps.all[link]
	if e == nil || (!reflect.DeepEqual(e.link, fl) && e.p.Status().State.Final()) {
		deviceName := ""
		if cfg := c.opts.Config(); cfg != nil {
			deviceName = cfg.Device.Name
		}
		e = &pairEntry{link: fl, p: frameio.NewPairing(fl.Config, frameio.PairOptions{TokenPath: fl.TokenPath,
			DeviceName: deviceName, Version: c.opts.Version, Clock: c.clk, Secrets: c.opts.Secrets})}
		ps.all[link] = e
	}
	return e.p, fl, true
}

// pairView describes link's pairing now.
func (c *Console) pairView(link string, p *frameio.Pairing) PairView {
	st := p.Status()
	v := PairView{Link: link, Paired: st.Paired, Pairing: st}
	for _, l := range c.opts.Snapshot().Links {
		if l.Name == link {
			v.LinkPairing, v.Project, v.AuthorizedBy = l.Details["pairing"], l.Details["project"], l.Details["authorized_by"]
		}
	}
	if st.State == frameio.PairPaired && st.Project != "" {
		v.Project, v.AuthorizedBy = st.Project, st.AuthorizedBy
	}
	if !v.Paired {
		v.Project, v.AuthorizedBy = "", ""
	}
	return v
}

func (c *Console) pairViews() []PairView {
	out := []PairView{}
	for _, l := range c.frameioLinks() {
		if p, _, ok := c.pairing(l.Link); ok {
			out = append(out, c.pairView(l.Link, p))
		}
	}
	return out
}

func (c *Console) handlePairings(w http.ResponseWriter, r *http.Request) { writeJSON(w, c.pairViews()) }

// withPairing runs h with the request's {link} pairing, or answers 404.
func (c *Console) withPairing(h func(http.ResponseWriter, *http.Request, string, *frameio.Pairing)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		link := r.PathValue("link")
		p, _, ok := c.pairing(link)
		if !ok {
			apiError(w, http.StatusNotFound, "no frameio link %q", link)
			return
		}
		h(w, r, link, p)
	}
}

func (c *Console) handlePairing(w http.ResponseWriter, r *http.Request, link string, p *frameio.Pairing) {
	writeJSON(w, c.pairView(link, p))
}

// handlePairStart starts a pairing run under Run's context: Run's end
// cancels it and waits for it, like a live stream.
func (c *Console) handlePairStart(w http.ResponseWriter, r *http.Request, link string, p *frameio.Pairing) {
	ctx, ok := c.begin(r.Context())
	if !ok {
		apiError(w, http.StatusServiceUnavailable, "the console is not running")
		return
	}
	if err := p.Start(ctx); err != nil {
		c.wg.Done()
		if errors.Is(err, frameio.ErrPairingRunning) {
			apiError(w, http.StatusConflict, "%s: a pairing or unpairing is in progress; cancel it first", link)
			return
		}
		apiError(w, http.StatusInternalServerError, "%v", c.opts.Secrets.Err(err))
		return
	}
	go func() {
		defer c.wg.Done()
		_, _ = p.Wait(context.WithoutCancel(ctx)) // the run ends with ctx at the latest
	}()
	c.log.Info("console: Frame.io pairing started", "link", link)
	w.Header().Set("Location", "/api/frameio/"+link)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	writeJSON(w, c.pairView(link, p))
}

func (c *Console) handlePairCancel(w http.ResponseWriter, r *http.Request, link string, p *frameio.Pairing) {
	p.Cancel()
	writeJSON(w, c.pairView(link, p))
}

func (c *Console) handleUnpair(w http.ResponseWriter, r *http.Request, link string, p *frameio.Pairing) {
	err := p.Unpair(r.Context())
	switch {
	case errors.Is(err, frameio.ErrPairingRunning):
		apiError(w, http.StatusConflict, "%s: a pairing is in progress; cancel it first", link)
	case errors.Is(err, frameio.ErrNotPaired):
		apiError(w, http.StatusConflict, "%s is not paired", link)
	case err != nil:
		// Frame.io could not be reached (or answered 5xx): the tokens
		// are kept, so the device can be deauthorized later.
		apiError(w, http.StatusBadGateway, "unpair %s: %v; the tokens are kept, try again", link, c.opts.Secrets.Err(err))
	default:
		c.log.Info("console: Frame.io device unpaired", "link", link)
		writeJSON(w, c.pairView(link, p))
	}
}

// pairingRoutes registers the pairing API with the access wrappers of
// routes.
func (c *Console) pairingRoutes(m *http.ServeMux, view, action func(http.HandlerFunc) http.Handler) {
	m.Handle("GET /api/frameio", view(c.handlePairings))
	m.Handle("GET /api/frameio/{link}", view(c.withPairing(c.handlePairing)))
	m.Handle("POST /api/frameio/{link}/pair", action(c.withPairing(c.handlePairStart)))
	m.Handle("POST /api/frameio/{link}/pair/cancel", action(c.withPairing(c.handlePairCancel)))
	m.Handle("POST /api/frameio/{link}/unpair", action(c.withPairing(c.handleUnpair)))
}
