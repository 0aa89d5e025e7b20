package console

import (
	"net/http"
	"time"

	"github.com/edge-agent/edge-agent/agent/status"
	"github.com/edge-agent/edge-agent/sensors"
)

// LinkView is one link card: the link's status and its recent history.
type LinkView struct {
	status.LinkStatus
	Events []Event `json:"events"`
}

// SensorView is one sensor as the console shows it: its status, what it
// produces, and the live view the console offers for it.
type SensorView struct {
	status.SensorStatus
	// Rate is samples (rows, frames) per second as the driver reports it
	// (a serial board's detected rate once known).
	Rate     float64  `json:"rate,omitempty"`
	Width    int      `json:"width,omitempty"`
	Height   int      `json:"height,omitempty"`
	Axes     []string `json:"axes,omitempty"`
	Units    string   `json:"units,omitempty"`
	Channels int      `json:"channels,omitempty"`
	// Format is what one sample holds: "JPEG", "H.264", "PCM s16le",
	// "rows" (motion), "scores" (an on-device model's, one per label).
	Format string `json:"format"`
	// Live is the live view: "mjpeg" (camera preview), "plot" (rolling
	// axes or label scores), "level" (audio meter and waveform) or "" when
	// there is none,
	// with NoLive saying why and Stills naming a still sensor shown
	// instead when there is one.
	Live    string `json:"live"`
	LiveURL string `json:"live_url,omitempty"`
	NoLive  string `json:"no_live,omitempty"`
	Stills  string `json:"stills,omitempty"`
	// Viewers is how many console streams watch it now.
	Viewers int `json:"viewers"`
}

// StatusView is GET /api/status: the agent's snapshot and the console's
// own counters.
type StatusView struct {
	status.Snapshot
	Console ConsoleStats `json:"console"`
}

// ConsoleStats are the console's bounded resources in use.
type ConsoleStats struct {
	Viewers    int `json:"viewers"`
	MaxViewers int `json:"max_viewers"`
	// Dropped counts samples the console's streams lost to a full queue (a
	// browser that read too slowly), over the streams that ended.
	Dropped  uint64 `json:"dropped"`
	Captures int    `json:"captures"`
}

// Stats returns the console's counters (GET /api/status shows them).
func (c *Console) Stats() ConsoleStats {
	return ConsoleStats{Viewers: len(c.viewers), MaxViewers: MaxViewers, Dropped: c.live.dropped.Load(), Captures: c.caps.count()}
}

func (c *Console) handleStatus(w http.ResponseWriter, r *http.Request) {
	snap := c.opts.Snapshot()
	c.hist.observe(snap)
	writeJSON(w, StatusView{Snapshot: snap, Console: c.Stats()})
}

func (c *Console) links() []LinkView {
	snap := c.opts.Snapshot()
	c.hist.observe(snap)
	out := make([]LinkView, 0, len(snap.Links))
	for _, l := range snap.Links {
		ev := c.hist.events(l.Name)
		if ev == nil {
			ev = []Event{}
		}
		out = append(out, LinkView{LinkStatus: l, Events: ev})
	}
	return out
}

func (c *Console) handleLinks(w http.ResponseWriter, r *http.Request) { writeJSON(w, c.links()) }

func (c *Console) handleLink(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for _, l := range c.links() {
		if l.Name == name {
			writeJSON(w, l)
			return
		}
	}
	apiError(w, http.StatusNotFound, "no link %q", name)
}

// sensorViews describes every sensor of snap.
func (c *Console) sensorViews(snap status.Snapshot) []SensorView {
	infos := c.opts.Hub.Sensors()
	byName := make(map[string]sensors.Info, len(infos))
	stills := ""
	for _, in := range infos {
		byName[in.Name] = in
		if in.Class == sensors.Still && stills == "" {
			stills = in.Name
		}
	}
	viewers := c.viewerCounts()
	out := make([]SensorView, 0, len(snap.Sensors))
	for _, s := range snap.Sensors {
		v := SensorView{SensorStatus: s, Viewers: viewers[s.Name]}
		in, ok := byName[s.Name]
		if !ok {
			v.NoLive = "the sensor is gone (a reload removed it)"
			out = append(out, v)
			continue
		}
		v.Rate, v.Width, v.Height, v.Axes, v.Units, v.Channels = in.Rate, in.Width, in.Height, in.Axes, in.Units, in.Channels
		base := "/api/sensors/" + s.Name
		switch in.Class {
		case sensors.Still:
			v.Format, v.Live, v.LiveURL = "JPEG", "mjpeg", base+"/mjpeg"
		case sensors.Motion:
			v.Format, v.Live, v.LiveURL = "rows", "plot", base+"/live"
		case sensors.Inference:
			v.Format, v.Live, v.LiveURL = "scores", "plot", base+"/live"
		case sensors.Audio:
			v.Format, v.Live, v.LiveURL = "PCM s16le", "level", base+"/live"
		case sensors.Video:
			v.Format = "H.264"
			if stills != "" {
				v.Stills = stills
				v.NoLive = "an H.264 source is not decoded on the board; the preview shows the still camera " + stills
			} else {
				v.NoLive = "an H.264 source is not decoded on the board, and no still camera (a sensor of class still) is configured to show instead"
			}
		default:
			v.Format = in.Class.String()
			v.NoLive = "no live view for this class"
		}
		if s.State == "error" && s.LastError != "" && s.Subscribers == 0 && s.Samples == 0 && v.Live != "" {
			// A sensor whose driver could not be built never streams.
			v.NoLive = "the sensor failed: " + s.LastError
		}
		out = append(out, v)
	}
	return out
}

// ReloadView is GET /api/reload: the last config reload in a sentence
// (status.ReloadStatus.Summary), null before any. Someone who ran
// `systemctl reload` sees on the overview what it did, or why the file
// was refused.
type ReloadView struct {
	At      time.Time `json:"at"`
	Refused bool      `json:"refused"`
	Summary string    `json:"summary"`
}

func reloadView(st *status.ReloadStatus) *ReloadView {
	if st == nil {
		return nil
	}
	return &ReloadView{At: st.At, Refused: st.Error != "", Summary: st.Summary()}
}

func (c *Console) handleReload(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, reloadView(c.opts.Snapshot().Reload))
}

// handleRules is GET /api/rules: the rules of /status (an empty list
// without any).
func (c *Console) handleRules(w http.ResponseWriter, r *http.Request) {
	rules := c.opts.Snapshot().Rules
	if rules == nil {
		rules = []status.RuleStatus{}
	}
	writeJSON(w, rules)
}

func (c *Console) handleSensors(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, c.sensorViews(c.opts.Snapshot()))
}

func (c *Console) handleSensor(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for _, s := range c.sensorViews(c.opts.Snapshot()) {
		if s.Name == name {
			writeJSON(w, s)
			return
		}
	}
	apiError(w, http.StatusNotFound, "no sensor %q", name)
}

// ConfigView is GET /api/config: the effective config with every secret
// masked, and the file it was loaded from.
type ConfigView struct {
	File string `json:"file"`
	YAML string `json:"yaml"`
}

func (c *Console) configView() (ConfigView, error) {
	cfg := c.opts.Config()
	text, err := redactedConfig(cfg, c.opts.Secrets)
	if err != nil {
		return ConfigView{}, err
	}
	return ConfigView{File: cfg.File, YAML: text}, nil
}

func (c *Console) handleConfig(w http.ResponseWriter, r *http.Request) {
	v, err := c.configView()
	if err != nil {
		apiError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	writeJSON(w, v)
}
