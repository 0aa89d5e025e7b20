package console

import (
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/edge-agent/edge-agent/agent/status"
)

// parsePage parses the page at /, rendered with the same data the API
// returns; console.js then keeps it current from the API and runs the live
// views. Without JavaScript it is a complete, static status page. New
// parses it, so a process without a console holds none of it.
func parsePage() (*template.Template, error) {
	return template.New("page.html").Funcs(template.FuncMap{
		"ago":   ago,
		"rfc":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"bytes": humanBytes,
		"newestFirst": func(ev []Event) []Event {
			out := slices.Clone(ev)
			slices.Reverse(out)
			return out
		},
		"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	}).ParseFS(webFS, "web/page.html", "web/uploads.html", "web/pairing.html")
}

// pageData is what page.html renders.
type pageData struct {
	Snap       status.Snapshot
	Session    session
	Reload     *ReloadView
	Links      []LinkView
	Sensors    []SensorView
	Cameras    []SensorView // still and video sensors
	Signals    []SensorView // motion and audio sensors, model scores
	Config     ConfigView
	ConfigErr  string
	Captures   []Capture
	MaxSeconds int
	Uploads    []UploadQueueView // uploads.html
	Pairings   []PairView        // pairing.html
}

func (c *Console) handlePage(w http.ResponseWriter, r *http.Request) {
	d := pageData{Session: c.access.sessionOf(w, r), MaxSeconds: MaxCaptureSeconds}
	d.Snap = c.opts.Snapshot()
	if !d.Session.CanView {
		// Only the header and the sign-in form.
		d.Snap = status.Snapshot{Version: d.Snap.Version}
	} else {
		c.hist.observe(d.Snap)
		for _, l := range d.Snap.Links {
			d.Links = append(d.Links, LinkView{LinkStatus: l, Events: c.hist.events(l.Name)})
		}
		d.Reload = reloadView(d.Snap.Reload)
		d.Sensors = c.sensorViews(d.Snap)
		for _, s := range d.Sensors {
			switch s.Class {
			case "still", "video":
				d.Cameras = append(d.Cameras, s)
			case "motion", "audio", "inference":
				d.Signals = append(d.Signals, s)
			}
		}
		var err error
		if d.Config, err = c.configView(); err != nil {
			d.ConfigErr = err.Error()
		}
		d.Captures = c.caps.all()
		for _, q := range c.queues() {
			d.Uploads = append(d.Uploads, c.uploadView(q))
		}
		d.Pairings = c.pairViews()
	}
	if d.Snap.Version == "" {
		d.Snap.Version = c.opts.Version
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := c.page.Execute(w, d); err != nil {
		c.log.Debug("console page", "err", err)
	}
}

// ago is how long before now t was, in whole seconds.
func ago(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// humanBytes writes n in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMG"[exp])
}
