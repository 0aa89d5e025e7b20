// Package status serves the agent's status API on status.listen: /healthz,
// /status (JSON), /metrics (Prometheus text) and / (a small HTML page, or
// the web console once Mount hands it over). Every endpoint renders one
// Snapshot taken at request time, so the numbers on the page, in JSON and
// in metrics always agree.
//
// Only requests naming this board in their Host header are answered: the
// listen address, localhost, an IP literal or a name given to AllowHost. A
// web page elsewhere can make a browser on the LAN resolve its own domain to
// this board (DNS rebinding) and read the answers as same-origin; the Host
// header still carries that domain, so such requests get 421.
//
// Concurrency: the Server is safe for concurrent requests; the snapshot
// function it is given must be too. AllowHost and EnablePprof are called
// before Serve.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is the whole /status document.
type Snapshot struct {
	Device  Device         `json:"device"`
	Clock   Clock          `json:"clock"`
	Version string         `json:"version"`
	Started time.Time      `json:"started"`
	Links   []LinkStatus   `json:"links"`
	Sensors []SensorStatus `json:"sensors"`
	// Reload is the outcome of the last configuration reload (SIGHUP,
	// `systemctl reload`); absent until the first one.
	Reload *ReloadStatus `json:"reload,omitempty"`
	// Inference lists the on-device models (`inference[]`); absent
	// without any.
	Inference []InferenceStatus `json:"inference,omitempty"`
	// Rules lists the rules (`rules[]`) on the models' results; absent
	// without any.
	Rules []RuleStatus `json:"rules,omitempty"`
}

// ReloadStatus is what one configuration reload did. A refused file
// (Error set, to the file's problems) changed nothing.
type ReloadStatus struct {
	At      time.Time     `json:"at"`
	Error   string        `json:"error,omitempty"`
	Links   ReloadChanges `json:"links"`
	Sensors ReloadChanges `json:"sensors"`
	// Inference names the on-device models (`inference[]`) the reload
	// added, removed, restarted or kept running.
	Inference ReloadChanges `json:"inference"`
	// Applied lists the top-level settings changed in place (log.level,
	// memory_limit, rules); NeedsRestart those that take effect at the
	// next restart of the agent (status.listen, log.format).
	Applied      []string `json:"applied,omitempty"`
	NeedsRestart []string `json:"needs_restart,omitempty"`
}

// Summary is what the reload did in a few words, for the unit's status
// line and the console: "1 link restarted, 2 sensors added; applied: rules;
// at the next restart: status", "nothing changed", or why the file was
// refused.
func (st ReloadStatus) Summary() string {
	if st.Error != "" {
		return "refused, nothing changed: " + st.Error
	}
	var parts []string
	add := func(names []string, one, many string) {
		switch len(names) {
		case 0:
		case 1:
			parts = append(parts, "1 "+one)
		default:
			parts = append(parts, fmt.Sprintf("%d %s", len(names), many))
		}
	}
	add(st.Links.Restarted, "link restarted", "links restarted")
	add(st.Links.Added, "link added", "links added")
	add(st.Links.Removed, "link removed", "links removed")
	add(st.Sensors.Restarted, "sensor restarted", "sensors restarted")
	add(st.Sensors.Added, "sensor added", "sensors added")
	add(st.Sensors.Removed, "sensor removed", "sensors removed")
	add(st.Inference.Restarted, "model restarted", "models restarted")
	add(st.Inference.Added, "model added", "models added")
	add(st.Inference.Removed, "model removed", "models removed")
	var clauses []string
	if len(parts) > 0 {
		clauses = append(clauses, strings.Join(parts, ", "))
	}
	if len(st.Applied) > 0 {
		clauses = append(clauses, "applied: "+strings.Join(st.Applied, ", "))
	}
	if len(clauses) == 0 {
		clauses = append(clauses, "nothing changed")
	}
	if len(st.NeedsRestart) > 0 {
		clauses = append(clauses, "at the next restart: "+strings.Join(st.NeedsRestart, ", "))
	}
	return strings.Join(clauses, "; ")
}

// ReloadChanges names the links or sensors a reload added, removed,
// restarted (their config changed, or a sensor they use changed in a way
// they must see) and left running untouched.
type ReloadChanges struct {
	Added     []string `json:"added,omitempty"`
	Removed   []string `json:"removed,omitempty"`
	Restarted []string `json:"restarted,omitempty"`
	Unchanged []string `json:"unchanged,omitempty"`
}

// Device is the board identity. Model is the device-tree model ("Raspberry
// Pi 4 Model B Rev 1.4"), absent on a board without one; Type is what Edge
// Impulse is told (deviceType).
type Device struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Type  string `json:"type"`
	Model string `json:"model,omitempty"`
}

// Clock is the board's wall clock as the agent sees it.
type Clock struct {
	// Synced says whether the wall clock is synchronized (NTP): until it
	// is, capture times are kept on the monotonic clock and corrected when
	// it syncs (internal/timesync).
	Synced bool `json:"synced"`
}

// LinkStatus is one link. State is connecting|up|backoff|stopped|failed.
type LinkStatus struct {
	Name       string            `json:"name"`
	Kind       string            `json:"kind"`
	State      string            `json:"state"`
	Since      time.Time         `json:"since"`
	LastError  string            `json:"last_error"`
	Reconnects uint64            `json:"reconnects"`
	Sessions   uint64            `json:"sessions"` // sessions that came up since the link was (re)started
	BytesIn    int64             `json:"bytes_in"`
	BytesOut   int64             `json:"bytes_out"`
	MsgsIn     int64             `json:"messages_in"`
	MsgsOut    int64             `json:"messages_out"`
	Details    map[string]string `json:"details,omitempty"`
	Spool      *SpoolStatus      `json:"spool,omitempty"`
}

// SpoolStatus is a link's upload queue.
type SpoolStatus struct {
	Items     int    `json:"items"`
	Bytes     int64  `json:"bytes"`
	Refused   uint64 `json:"refused"`
	Delivered uint64 `json:"delivered"`
	Rejected  uint64 `json:"rejected"`
	Cancelled uint64 `json:"cancelled"` // removed by a user in the console
}

// SensorStatus is one sensor.
type SensorStatus struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Class       string    `json:"class"`
	State       string    `json:"state"`
	Subscribers int       `json:"subscribers"`
	Samples     uint64    `json:"samples"`
	Dropped     uint64    `json:"dropped"`
	Restarts    uint64    `json:"restarts"`
	LastError   string    `json:"last_error,omitempty"`
	LastSample  time.Time `json:"last_sample,omitzero"`
	// NativeRate is the rate a microphone really captures at, its
	// device's own, which it converts to the sensor's rate; absent for
	// other sensors and until the device is open.
	NativeRate float64 `json:"native_rate,omitempty"`
	// Stalls counts the restarts that were stalls: the hub's watchdog
	// ended a run that went silent (no first frame, or none for the
	// sensor's stall timeout). LastStall is the most recent.
	Stalls    uint64       `json:"stalls"`
	LastStall *StallStatus `json:"last_stall,omitempty"`
}

// StallStatus is one stall: when the watchdog ended the run, and why.
type StallStatus struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// LinkStates lists the states in the contract's order.
var LinkStates = []string{"connecting", "up", "backoff", "stopped", "failed"}

// Server is the status HTTP server.
type Server struct {
	snapshot func() Snapshot
	log      *slog.Logger
	reg      *prometheus.Registry
	mux      *http.ServeMux

	hosts map[string]bool // names accepted in Host besides localhost and IP literals
	page  http.Handler    // serves / instead of the table page (Mount); nil: the table

	mu  sync.Mutex
	srv *http.Server
}

// New returns a server rendering snapshot. It registers its own Prometheus
// registry (no global state): the agent's collector plus Go and process
// collectors.
func New(snapshot func() Snapshot, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{snapshot: snapshot, log: logger, reg: prometheus.NewRegistry(), mux: http.NewServeMux(),
		hosts: map[string]bool{"localhost": true}}
	s.reg.MustRegister(&collector{snapshot: snapshot},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /status", s.handleStatus)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: nil}))
	s.mux.HandleFunc("GET /{$}", s.handlePage)
	return s
}

// EnablePprof adds net/http/pprof under /debug/pprof/. Call before Serve.
func (s *Server) EnablePprof() {
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// Mount hands the page at / and every path under prefixes (each ending in
// "/", e.g. "/api/") to h, behind the same Host check: the web console
// (agent/console) takes the page over. /healthz, /status, /metrics and the
// profiler stay the server's. Call before Serve.
func (s *Server) Mount(h http.Handler, prefixes ...string) {
	s.page = h
	for _, p := range prefixes {
		s.mux.Handle(p, h)
	}
}

// AllowHost adds names accepted in the Host header (status.listen's host,
// the board's host name). Call before Serve.
func (s *Server) AllowHost(names ...string) {
	for _, n := range names {
		if n = normHost(n); n != "" {
			s.hosts[n] = true
		}
	}
}

// Handler returns the HTTP handler (for tests and embedding), with the Host
// check in front of every endpoint.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			s.log.Debug("status request for another host refused", "host", r.Host, "remote", r.RemoteAddr)
			http.Error(w, "misdirected request: this is edge-agent's status server; use its IP address or localhost",
				http.StatusMisdirectedRequest)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether a request's Host names this board. An empty
// Host (HTTP/1.0 without one) is no browser's and is let through.
func (s *Server) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true
	}
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = normHost(h)
	if net.ParseIP(h) != nil {
		return true
	}
	return s.hosts[h]
}

// normHost lower-cases a host name and drops IPv6 brackets and a trailing dot.
func normHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

// Serve serves on ln until ctx ends, then shuts down gracefully (in-flight
// requests get up to 2 s). It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("status server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("status server: %w", err)
	}
	return nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.snapshot())
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>edge-agent {{.Device.Name}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.up,.running{color:#080}.backoff,.connecting,.idle{color:#a60}.failed,.error{color:#c00}.stopped{color:#666}
small{color:#666}
</style></head><body>
<h1>edge-agent <small>{{.Version}}</small></h1>
<p>Device <b>{{.Device.Name}}</b> · id {{.Device.ID}} · type {{.Device.Type}}{{with .Device.Model}} · {{.}}{{end}} · started {{ago .Started}}</p>
<h2>Links</h2>
<table><tr><th>name</th><th>kind</th><th>state</th><th>since</th><th>reconnects</th><th>in / out</th><th>spool</th><th>details</th><th>last error</th></tr>
{{range .Links}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td class="{{.State}}">{{.State}}</td><td>{{ago .Since}}</td><td>{{.Reconnects}}</td>
<td>{{.MsgsIn}} msg / {{.MsgsOut}} msg</td><td>{{with .Spool}}{{.Items}} queued · {{.Delivered}} sent{{end}}</td>
<td>{{range $k, $v := .Details}}{{$k}}={{$v}} {{end}}</td><td>{{.LastError}}</td></tr>
{{else}}<tr><td colspan="9">no links configured</td></tr>{{end}}
</table>
<h2>Sensors</h2>
<table><tr><th>name</th><th>kind</th><th>class</th><th>state</th><th>subscribers</th><th>samples</th><th>dropped</th><th>restarts</th><th>last sample</th><th>last error</th></tr>
{{range .Sensors}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td>{{.Class}}{{with .NativeRate}} · {{.}} Hz native{{end}}</td><td class="{{.State}}">{{.State}}</td><td>{{.Subscribers}}</td>
<td>{{.Samples}}</td><td>{{.Dropped}}</td><td>{{.Restarts}}{{with .LastStall}} · stalled {{ago .At}}: {{.Reason}}{{end}}</td><td>{{ago .LastSample}}</td><td>{{.LastError}}</td></tr>
{{else}}<tr><td colspan="10">no sensors configured</td></tr>{{end}}
</table>
<p><a href="/status">/status</a> · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></p>
</body></html>
`))

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	if s.page != nil {
		s.page.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, s.snapshot()); err != nil {
		s.log.Debug("status page", "err", err)
	}
}

// collector exports a Snapshot as Prometheus metrics at scrape time.
type collector struct{ snapshot func() Snapshot }

var (
	descLinkState   = prometheus.NewDesc("edge_agent_link_state", "1 for the link's current state, 0 for the others.", []string{"link", "kind", "state"}, nil)
	descReconnects  = prometheus.NewDesc("edge_agent_link_reconnects_total", "Sessions that ended and were retried.", []string{"link", "kind"}, nil)
	descBytesIn     = prometheus.NewDesc("edge_agent_link_bytes_in_total", "Bytes received by the link.", []string{"link", "kind"}, nil)
	descBytesOut    = prometheus.NewDesc("edge_agent_link_bytes_out_total", "Bytes sent by the link.", []string{"link", "kind"}, nil)
	descMsgsIn      = prometheus.NewDesc("edge_agent_link_messages_in_total", "Messages received by the link.", []string{"link", "kind"}, nil)
	descMsgsOut     = prometheus.NewDesc("edge_agent_link_messages_out_total", "Messages sent by the link.", []string{"link", "kind"}, nil)
	descDetail      = prometheus.NewDesc("edge_agent_link_detail", "Link-specific status value (paused, recording…), 1 for the current value.", []string{"link", "key", "value"}, nil)
	descSpoolItems  = prometheus.NewDesc("edge_agent_spool_items", "Items waiting in the link's durable upload spool.", []string{"link"}, nil)
	descSpoolBytes  = prometheus.NewDesc("edge_agent_spool_bytes", "Bytes waiting in the link's durable upload spool.", []string{"link"}, nil)
	descSpoolRef    = prometheus.NewDesc("edge_agent_spool_refused_total", "Items refused because the spool was full.", []string{"link"}, nil)
	descSpoolDel    = prometheus.NewDesc("edge_agent_spool_delivered_total", "Items delivered and removed from the spool.", []string{"link"}, nil)
	descSpoolRej    = prometheus.NewDesc("edge_agent_spool_rejected_total", "Items the peer refused for good (dropped).", []string{"link"}, nil)
	descSpoolCan    = prometheus.NewDesc("edge_agent_spool_cancelled_total", "Items a user cancelled in the console (dropped).", []string{"link"}, nil)
	descSamples     = prometheus.NewDesc("edge_agent_sensor_samples_total", "Samples (rows, blocks, frames) produced by the sensor.", []string{"sensor", "kind"}, nil)
	descDropped     = prometheus.NewDesc("edge_agent_sensor_dropped_total", "Samples lost to full subscriber queues.", []string{"sensor", "kind"}, nil)
	descSubscribers = prometheus.NewDesc("edge_agent_sensor_subscribers", "Current subscribers of the sensor.", []string{"sensor", "kind"}, nil)
	descRestarts    = prometheus.NewDesc("edge_agent_sensor_restarts_total", "Times the sensor's source failed or stalled and was restarted.", []string{"sensor", "kind"}, nil)
	descStalls      = prometheus.NewDesc("edge_agent_sensor_stalls_total", "Times the sensor went silent (no first sample, or none for its stall timeout) and was restarted.", []string{"sensor", "kind"}, nil)
	descBuild       = prometheus.NewDesc("edge_agent_build_info", "Agent version.", []string{"version"}, nil)
	descClockSynced = prometheus.NewDesc("edge_agent_clock_synced", "1 when the wall clock is synchronized (NTP), else 0.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLinkState, descReconnects, descBytesIn, descBytesOut, descMsgsIn,
		descMsgsOut, descDetail, descSpoolItems, descSpoolBytes, descSpoolRef, descSpoolDel, descSpoolRej, descSpoolCan,
		descSamples, descDropped, descSubscribers, descRestarts, descStalls, descBuild, descClockSynced} {
		ch <- d
	}
	for _, d := range inferenceDescs {
		ch <- d
	}
	for _, d := range ruleDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descBuild, 1, s.Version)
	synced := 0.0
	if s.Clock.Synced {
		synced = 1
	}
	gauge(descClockSynced, synced)
	for _, l := range s.Links {
		for _, st := range LinkStates {
			v := 0.0
			if st == l.State {
				v = 1
			}
			gauge(descLinkState, v, l.Name, l.Kind, st)
		}
		counter(descReconnects, float64(l.Reconnects), l.Name, l.Kind)
		counter(descBytesIn, float64(l.BytesIn), l.Name, l.Kind)
		counter(descBytesOut, float64(l.BytesOut), l.Name, l.Kind)
		counter(descMsgsIn, float64(l.MsgsIn), l.Name, l.Kind)
		counter(descMsgsOut, float64(l.MsgsOut), l.Name, l.Kind)
		for k, v := range l.Details {
			gauge(descDetail, 1, l.Name, k, v)
		}
		if sp := l.Spool; sp != nil {
			gauge(descSpoolItems, float64(sp.Items), l.Name)
			gauge(descSpoolBytes, float64(sp.Bytes), l.Name)
			counter(descSpoolRef, float64(sp.Refused), l.Name)
			counter(descSpoolDel, float64(sp.Delivered), l.Name)
			counter(descSpoolRej, float64(sp.Rejected), l.Name)
			counter(descSpoolCan, float64(sp.Cancelled), l.Name)
		}
	}
	for _, x := range s.Sensors {
		counter(descSamples, float64(x.Samples), x.Name, x.Kind)
		counter(descDropped, float64(x.Dropped), x.Name, x.Kind)
		gauge(descSubscribers, float64(x.Subscribers), x.Name, x.Kind)
		counter(descRestarts, float64(x.Restarts), x.Name, x.Kind)
		counter(descStalls, float64(x.Stalls), x.Name, x.Kind)
	}
	collectInference(ch, s)
	collectRules(ch, s)
}
