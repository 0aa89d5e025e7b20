// Package config loads the agent's YAML file: defaults first, then a strict
// decode (every unknown key is an error naming file:line and its field path,
// with a suggestion), then Validate, which collects every problem at once.
// Each sensor and link kind owns its block's struct, defaults and checks, and
// agent/kinds lists the kinds; this package only assembles them and maps
// field paths back to file:line.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/agent/kinds"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/identity"
)

// DefaultPath is where `edge-agent run` looks without -config.
const DefaultPath = "/etc/edge-agent/config.yaml"

// Config is the whole file.
type Config struct {
	Device Device `yaml:"device"`
	// StateDir holds the upload spools and link state such as tokens;
	// created 0700.
	StateDir string   `yaml:"state_dir"`
	Log      Log      `yaml:"log"`
	Status   Status   `yaml:"status"`
	Spool    Spool    `yaml:"spool"`
	Backoff  Backoff  `yaml:"backoff"`
	Sensors  []Sensor `yaml:"sensors"`
	Links    []Link   `yaml:"links"`
	// Inference runs Edge Impulse models on the sensors' data
	// (agent/infer); see Inference. A reload replaces the models whose
	// entry changed.
	Inference []Inference `yaml:"inference"`
	// Rules turn the models' results into actions on the links
	// (agent/rules); see Rule. A reload that changes them, or the
	// models, replaces them.
	Rules []Rule `yaml:"rules"`

	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT): near
	// it the garbage collector runs more often, so the agent stays small
	// on a board with little RAM instead of growing until the kernel
	// kills something. 0 means no limit. The GOMEMLIMIT environment
	// variable, when set, wins. The default suits a 512 MB Raspberry Pi
	// Zero 2 W (deploy/README.md); a reload applies a new value.
	MemoryLimit conf.Size `yaml:"memory_limit"`

	// File is the path the config was loaded from ("" when built in code).
	File string `yaml:"-"`
	// Warnings are non-fatal findings (inline secrets, readable secret files,
	// TLS verification off).
	Warnings []string `yaml:"-"`
	// Secrets are every secret the config names, inline or read from its
	// *_file, so the agent can keep them out of logs and status.
	Secrets []string `yaml:"-"`
	// inlineAt locates each secret given inline ("file:line: path"), for
	// Load's check of the file's mode.
	inlineAt []string
}

// Device is the board's identity; "auto" values are resolved by Resolve.
type Device struct {
	// ID identifies the board to the clouds and must not change; auto is the
	// id kept in state_dir/device-id, else the MAC of the first physical
	// network interface (eth0, end0, wlan0 first; virtual ones never), else
	// a hash of /etc/machine-id, kept in state_dir/device-id from its first
	// use on.
	ID string `yaml:"id"`
	// Name is shown in the clouds' device lists; auto is the hostname.
	Name string `yaml:"name"`
	// Type is the board type Edge Impulse shows (deviceType); auto derives
	// it from /proc/device-tree/model (a Raspberry Pi gives RASPBERRY_PI).
	Type string `yaml:"type"`
	// Model is the board's model from /proc/device-tree/model ("Raspberry
	// Pi 4 Model B Rev 1.4"), filled by Resolve; "" without a device tree.
	Model string `yaml:"-"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Status configures the status HTTP server. An empty Listen disables it.
type Status struct {
	// Listen is host:port for /healthz, /status, /metrics and the status
	// page; empty disables the server.
	Listen string `yaml:"listen"`
	// Pprof also serves Go's profiler under /debug/pprof/ (heap, CPU,
	// goroutines), to diagnose memory or CPU on a board. Off by default;
	// keep listen on loopback when it is on.
	Pprof bool `yaml:"pprof"`
	// TokenFile holds the web console's token, which every action (a
	// capture, a sign-in) needs when listen is beyond loopback; the agent
	// creates it (0600, random) when it is missing. Empty means
	// state_dir/console-token. See docs/API.md.
	TokenFile string `yaml:"token_file"`
	// OpenReadonly lets anyone who reaches listen see the console's views
	// (live sensors, link cards, the config with secrets masked) without
	// the token; actions still need it. Off by default.
	OpenReadonly bool `yaml:"open_readonly"`
}

// Spool bounds each link's durable upload queue.
type Spool struct {
	// MaxSize bounds each link's spool; when full, new items are refused
	// (counted and logged), queued ones are never evicted.
	MaxSize conf.Size `yaml:"max_size"`
	// Upload is how each link's spool sends what it holds: "auto" as soon
	// as it can, "manual" only what a user sends from the web console
	// (items are still captured and queued). The console can switch it;
	// its choice is kept in the state directory until this value changes.
	Upload string `yaml:"upload"`
}

// Backoff is the reconnect policy of the link supervisor.
type Backoff struct {
	Min conf.Duration `yaml:"min"` // first wait after a failure
	Max conf.Duration `yaml:"max"` // the wait doubles up to this
	// Jitter is the fraction of each wait that is randomised (0..1), so
	// many boards restarting together spread out.
	Jitter float64 `yaml:"jitter"`
	// StableAfter: a session that stayed up this long resets the wait to min.
	StableAfter conf.Duration `yaml:"stable_after"`
}

// Sensor is one named sensor instance: kind plus the block named like it.
type Sensor struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`
	// Block is the kind's config block, a pointer to its package's Config
	// (*iio.Config for kind iio): read from and written to the key named
	// like the kind, nil when the file has none. Callers that need the
	// concrete type assert it.
	Block kinds.Block `yaml:"-"`

	decodeErrs []string     // type errors of this element (see keepElement)
	others     []namedBlock // blocks of other kinds found beside Block
}

// Link is one named link instance: kind plus the block named like it.
type Link struct {
	Name     string   `yaml:"name"`
	Kind     string   `yaml:"kind"`
	Disabled bool     `yaml:"disabled,omitempty"`
	Backoff  *Backoff `yaml:"backoff,omitempty"` // overrides the top-level policy
	// Block is the kind's config block (*rtm.Config for kind rtm); see
	// Sensor.Block.
	Block kinds.Block `yaml:"-"`

	decodeErrs []string
	others     []namedBlock
}

// Default returns the configuration an empty file means. This is the one
// place top-level defaults live; each kind's defaults live in its
// Config.SetDefaults.
func Default() Config {
	return Config{
		Device:   Device{ID: "auto", Name: "auto", Type: "auto"},
		StateDir: "/var/lib/edge-agent",
		Log:      Log{Level: "info", Format: "text"},
		Status:   Status{Listen: "127.0.0.1:8780"},
		Spool:    Spool{MaxSize: 256 << 20, Upload: "auto"},
		Backoff: Backoff{
			Min:         conf.Duration(1e9),
			Max:         conf.Duration(120e9),
			Jitter:      0.2,
			StableAfter: conf.Duration(60e9),
		},
		MemoryLimit: DefaultMemoryLimit,
	}
}

// DefaultMemoryLimit is memory_limit's default: about eight times what the
// agent's runtime holds with every link busy (docs/BENCHMARKS.md), a
// quarter of a Pi Zero 2 W's RAM.
const DefaultMemoryLimit = 128 << 20

// Error lists every problem found in a config file, each as
// "file:line: path: message".
type Error struct {
	File     string
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "config: " + e.Problems[0]
	}
	return fmt.Sprintf("config: %d problems:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Load reads, decodes and validates the file at path. Secrets referenced by
// *_file keys are read (and checked) here. A returned *Error lists every
// problem.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(path, data)
	if cfg != nil {
		if fi, serr := os.Stat(path); serr == nil {
			cfg.Warnings = append(cfg.Warnings, inlineReadable(cfg.inlineAt, fi, ownGroup)...)
		}
	}
	return cfg, err
}

// AgentGroup is the service's group (deploy/sysusers.conf): the shipped
// config is 0640 root:edge-agent, so the agent may read it and nobody else.
const AgentGroup = "edge-agent"

// ownGroup reports whether gid is the agent's own group: the group this
// process runs as, or the service's group (check-config runs as root).
func ownGroup(gid uint32) bool {
	if int(gid) == os.Getegid() {
		return true
	}
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10))
	return err == nil && g.Name == AgentGroup
}

// inlineReadable warns about each inline secret when the config file that
// holds it can be read beyond the agent: by others, or by a group that is
// not the agent's own.
func inlineReadable(inlineAt []string, fi os.FileInfo, own func(gid uint32) bool) []string {
	perm := fi.Mode().Perm()
	beyond := perm&0o004 != 0
	if !beyond && perm&0o040 != 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !own(st.Gid) {
			beyond = true
		}
	}
	if !beyond {
		return nil
	}
	var out []string
	for _, at := range inlineAt {
		out = append(out, fmt.Sprintf("%s: secret given inline in a config file readable by group or others (mode %04o); "+
			"move it to its *_file (mode 0600) or chmod 0640 the config with group %s", at, perm, AgentGroup))
	}
	return out
}

// Parse is Load on bytes already read; name is used in messages.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Default()
	cfg.File = name
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{File: name, Problems: []string{yamlProblem(name, err.Error(), nil)}}
	}
	if root.Kind == 0 { // empty file
		return &cfg, validate(&cfg, nil)
	}
	idx := &index{lines: map[int]string{}}
	var problems []string
	checkKeys(&root, reflectTypeOfConfig, "", idx, func(line int, path, msg string) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", name, line, path, msg))
	})
	if err := root.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) { // not a per-field problem: nothing more to check
			problems = append(problems, yamlProblem(name, err.Error(), idx))
			return nil, &Error{File: name, Problems: problems}
		}
		for _, e := range te.Errors {
			problems = append(problems, yamlProblem(name, e, idx))
		}
	}
	for _, s := range cfg.Sensors {
		for _, e := range s.decodeErrs {
			problems = append(problems, yamlProblem(name, e, idx))
		}
	}
	for _, l := range cfg.Links {
		for _, e := range l.decodeErrs {
			problems = append(problems, yamlProblem(name, e, idx))
		}
	}
	// Validate what did decode, too, so one run shows every problem.
	verr := validate(&cfg, &root)
	if len(problems) == 0 {
		return &cfg, verr
	}
	var e *Error
	if errors.As(verr, &e) {
		problems = append(problems, e.Problems...)
	}
	sortProblems(problems)
	return nil, &Error{File: name, Problems: problems}
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblem turns "line 7: cannot unmarshal …" into "file:7: path: …".
func yamlProblem(name, msg string, idx *index) string {
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		if idx != nil {
			line, _ := strconv.Atoi(m[1])
			if p, ok := idx.lines[line]; ok {
				return fmt.Sprintf("%s:%s: %s: %s", name, m[1], p, m[2])
			}
		}
		return fmt.Sprintf("%s:%s: %s", name, m[1], m[2])
	}
	return fmt.Sprintf("%s: %s", name, msg)
}

func sortProblems(p []string) {
	lineOf := func(s string) int {
		parts := strings.SplitN(s, ":", 3)
		if len(parts) < 2 {
			return 0
		}
		n, _ := strconv.Atoi(parts[1])
		return n
	}
	sort.SliceStable(p, func(i, j int) bool { return lineOf(p[i]) < lineOf(p[j]) })
}

// validate runs every check and maps problem paths to lines in root.
func validate(cfg *Config, root *yaml.Node) error {
	v := conf.NewValidator()
	cfg.validate(v)
	var problems []string
	for _, p := range v.Problems() {
		problems = append(problems, locate(cfg.File, root, p))
	}
	cfg.Warnings = nil
	for _, w := range v.Warnings() {
		cfg.Warnings = append(cfg.Warnings, locate(cfg.File, root, w))
	}
	for _, path := range insecureTLS(reflect.ValueOf(cfg).Elem(), "") {
		cfg.Warnings = append(cfg.Warnings, locate(cfg.File, root, conf.Problem{Path: path,
			Msg: "TLS certificate verification is off: anyone on the network path can read this link's credentials and data; trust the server with ca_file instead"}))
	}
	cfg.Secrets = v.Secrets()
	cfg.inlineAt = nil
	for _, path := range v.Inline() {
		cfg.inlineAt = append(cfg.inlineAt, where(cfg.File, root, path))
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return &Error{File: cfg.File, Problems: problems}
	}
	return nil
}

func locate(file string, root *yaml.Node, p conf.Problem) string {
	return where(file, root, p.Path) + ": " + p.Msg
}

// where is "file:line: path" (just the path when there is no file).
func where(file string, root *yaml.Node, path string) string {
	if file == "" {
		return path
	}
	return fmt.Sprintf("%s:%d: %s", file, lineOfPath(root, path), path)
}

// insecureTLS returns the path of every insecure_skip_verify: true in v,
// found by the yaml tag wherever a kind's block keeps it (nested or inline
// structs included), so a new link kind cannot forget the warning.
func insecureTLS(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return insecureTLS(v.Elem(), path)
	case reflect.Slice:
		var out []string
		for i := 0; i < v.Len(); i++ {
			out = append(out, insecureTLS(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	case reflect.Struct:
		var out []string
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "insecure_skip_verify" && f.Type.Kind() == reflect.Bool {
				if v.Field(i).Bool() {
					out = append(out, joinPath(path, name))
				}
				continue
			}
			p := path
			if !strings.Contains(opts, "inline") {
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				p = joinPath(path, name)
			}
			out = append(out, insecureTLS(v.Field(i), p)...)
		}
		// A sensor's or link's blocks are kept beside its fields (yaml:"-").
		if h, ok := v.Interface().(interface{ blocks() []namedBlock }); ok {
			for _, b := range h.blocks() {
				out = append(out, insecureTLS(reflect.ValueOf(b.block), joinPath(path, b.kind))...)
			}
		}
		return out
	}
	return nil
}

func (c *Config) validate(v *conf.Validator) {
	if c.Device.ID == "" {
		v.Errorf("device.id", "required (or auto)")
	}
	v.Required("state_dir", c.StateDir)
	v.OneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.OneOf("log.format", c.Log.Format, "text", "json")
	if c.Status.Listen != "" {
		host, _, err := net.SplitHostPort(c.Status.Listen)
		if err != nil {
			v.Errorf("status.listen", "%q is not host:port", c.Status.Listen)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			v.Warnf("status.listen", "%s is reachable beyond this board: anyone on the network can read /status and /metrics; "+
				"listen on 127.0.0.1 unless a firewall limits who connects", c.Status.Listen)
			if c.Status.Pprof {
				v.Warnf("status.pprof", "the profiler is served on %s, beyond this board; listen on 127.0.0.1 while it is on", c.Status.Listen)
			}
		}
	}
	if c.Spool.MaxSize < 1<<20 {
		v.Errorf("spool.max_size", "must be at least 1MiB")
	}
	v.OneOf("spool.upload", c.Spool.Upload, "auto", "manual")
	c.Backoff.validate(v.At("backoff"))
	if c.MemoryLimit != 0 && c.MemoryLimit < 32<<20 {
		v.Errorf("memory_limit", "must be at least 32MiB (the runtime alone holds about 15MiB), or 0 for no limit")
	}

	sensorNames := map[string]bool{}
	for i := range c.Sensors {
		s := &c.Sensors[i]
		sv := v.At(fmt.Sprintf("sensors[%d]", i))
		checkName(sv, s.Name, sensorNames)
		checkBlock(sv, sensorTable, s.Kind, s.Block, s.others, sv.At(s.Kind))
	}
	c.validateInference(v, sensorNames)
	linkNames := map[string]bool{}
	for i := range c.Links {
		l := &c.Links[i]
		lv := v.At(fmt.Sprintf("links[%d]", i))
		checkName(lv, l.Name, linkNames)
		if l.Backoff != nil {
			l.Backoff.validate(lv.At("backoff"))
		}
		bv := lv.At(l.Kind)
		if l.Disabled {
			bv = bv.WithoutSecrets()
		}
		if !checkBlock(lv, linkTable, l.Kind, l.Block, l.others, bv) {
			continue
		}
		for _, ref := range SensorRefs(l) {
			if ref.Name != "" && !sensorNames[ref.Name] {
				lv.At(l.Kind).Errorf(ref.Field, "no sensor named %q", ref.Name)
			}
		}
	}
	c.validateRules(v)
}

// SensorRef is a link config field that names a sensor.
type SensorRef struct {
	Field string // path relative to the link's block, e.g. "video" or "sensors[1]"
	Name  string
}

// SensorRefs returns the sensors a link's block refers to. Link configs
// declare them with a SensorNames() map[string]string method (field path →
// sensor name) so the loader can check that every name exists.
func SensorRefs(l *Link) []SensorRef {
	r, ok := l.Block.(interface{ SensorNames() map[string]string })
	if !ok {
		return nil
	}
	var out []SensorRef
	for field, name := range r.SensorNames() {
		out = append(out, SensorRef{Field: field, Name: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func checkName(v *conf.Validator, name string, seen map[string]bool) {
	switch {
	case name == "":
		v.Errorf("name", "required")
	case !nameRE.MatchString(name):
		v.Errorf("name", "%q: use letters, digits, '.', '_' and '-'", name)
	case seen[name]:
		v.Errorf("name", "%q is used twice", name)
	}
	seen[name] = true
}

func (b *Backoff) validate(v *conf.Validator) {
	if b.Min <= 0 {
		v.Errorf("min", "must be > 0")
	}
	if b.Max < b.Min {
		v.Errorf("max", "must be >= min")
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		v.Errorf("jitter", "must be between 0 and 1")
	}
}

// Machine is where Resolve reads the board's identity. HostMachine is this
// machine's; tests give fake trees.
type Machine struct {
	Proc      string // /proc: device-tree/model
	Net       string // /sys/class/net
	MachineID string // /etc/machine-id
	// ReadOnly reads the id kept in state_dir but writes none: `pair` may
	// run as root and must not leave a root-owned file the daemon cannot
	// read.
	ReadOnly bool
	// Logger gets the chosen id and what went wrong choosing it; nil
	// discards.
	Logger *slog.Logger
}

// HostMachine is this machine, for a command that writes the id it chooses
// (run, demo).
func HostMachine(log *slog.Logger) Machine {
	return Machine{Proc: "/proc", Net: identity.NetRoot, MachineID: identity.MachineIDFile, Logger: log}
}

// Resolve fills "auto" device fields from the machine: the stable id (see
// Device.ID and internal/identity, kept in state_dir/device-id unless
// m.ReadOnly), the hostname and the device-tree model, and always fills
// Model. A configured id wins and touches no file. Nothing here fails: a
// state_dir that cannot be written leaves the computed id, with a warning.
// Not safe for concurrent use on one Config.
func (c *Config) Resolve(m Machine) {
	log := m.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c.Device.Model = identity.Model(m.Proc)
	if c.Device.ID == "auto" || c.Device.ID == "" {
		file := ""
		if c.StateDir != "" {
			file = filepath.Join(c.StateDir, identity.FileName)
		}
		ch := identity.Choose(identity.Options{NetRoot: m.Net, MachineIDFile: m.MachineID, File: file, ReadOnly: m.ReadOnly})
		for _, err := range ch.Problems {
			log.Warn("device id: " + err.Error())
		}
		if ch.Source == identity.FromFile && ch.Computed.ID != "" && ch.Computed.ID != ch.ID {
			log.Info("device id: keeping the id the clouds know this board by; the machine now gives another "+
				"(delete the file, or set device.id, to change it)", "id", ch.ID, "kept_in", file,
				"computed", ch.Computed.ID, "from", ch.Computed.String())
		}
		log.Info("device id", "id", ch.ID, "from", ch.String(), "kept", ch.Saved || ch.Source == identity.FromFile)
		c.Device.ID = ch.ID
	}
	if c.Device.Name == "auto" || c.Device.Name == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			c.Device.Name = h
		} else {
			c.Device.Name = "edge-agent"
		}
	}
	if c.Device.Type == "auto" || c.Device.Type == "" {
		c.Device.Type = BoardType(c.Device.Model)
	}
}

// BoardType maps a device-tree model string to the device type the clouds
// see (Edge Impulse's deviceType, which Studio uses to offer deployment
// targets): a Raspberry Pi → RASPBERRY_PI, a Jetson Nano →
// NVIDIA_JETSON_NANO, anything else (or no model) → EDGE_IMPULSE_LINUX, the
// vocabulary of Edge Impulse's Linux client (docs/protocols/edge-impulse.md
// §4.1). That client guesses the board from the MAC's vendor prefix, which
// misses a Pi 5; reading the board's own model does not. The model itself
// is reported beside the type (Device.Model).
func BoardType(model string) string {
	model = strings.TrimRight(strings.TrimSpace(model), "\x00")
	switch {
	case strings.Contains(model, "Raspberry Pi"):
		return "RASPBERRY_PI"
	case strings.Contains(model, "Jetson Nano"):
		return "NVIDIA_JETSON_NANO"
	}
	return "EDGE_IMPULSE_LINUX"
}
