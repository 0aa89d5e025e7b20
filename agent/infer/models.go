package infer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/atomicfile"
	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
)

// Deployments is where downloaded models come from: Studio, through the
// Edge Impulse link's API key (*edgeimpulse.Studio).
type Deployments interface {
	Deployment(ctx context.Context, target, variant string) (edgeimpulse.Deployment, error)
	Download(ctx context.Context, d edgeimpulse.Deployment, w io.Writer) (int64, error)
}

// Target is the Studio deployment type of this board's architecture, as
// edge-impulse-linux-runner picks it (docs/protocols/eim.md §8); "" when
// Studio builds none for it.
func Target() string {
	switch runtime.GOARCH {
	case "arm64":
		return "runner-linux-aarch64"
	case "arm":
		return "runner-linux-armv7"
	case "amd64":
		return "runner-linux-x86_64"
	}
	return ""
}

// ModelFile is one model on disk.
type ModelFile struct {
	Path    string    `json:"-"`
	Name    string    `json:"file"` // in the cache directory
	SHA256  string    `json:"sha256"`
	Size    int64     `json:"size"`
	Project int       `json:"project,omitempty"`
	Version int       `json:"version,omitempty"`
	Target  string    `json:"target,omitempty"`
	Variant string    `json:"variant,omitempty"`
	Fetched time.Time `json:"fetched,omitzero"`
}

// ModelsOptions say where a model comes from: a local file (Path), or
// Studio (Studio, Target, Variant) with downloads cached in Dir.
type ModelsOptions struct {
	Path string

	Studio  Deployments
	Target  string // default Target()
	Variant string // int8 | float32 | "" (the project's default)
	Dir     string // the cache: state_dir/models/<name>

	// MaxBytes bounds one download (default edgeimpulse.MaxModelBytes):
	// the bytes past it are never written, whatever the Studio client
	// lets through.
	MaxBytes int64
	// StallTimeout abandons a download that receives less than
	// ProgressBytes in this long, and bounds the whole question for the
	// newest deployment (a small JSON answer); default
	// DefaultStallTimeout. A peer that stops sending mid-body, or trickles,
	// cannot hold the update, and every later one, for good.
	StallTimeout time.Duration

	Clock  clock.Clock
	Logger *slog.Logger
}

// Models is the model a stream runs and where it comes from. A downloaded
// model is cached in Dir with its SHA-256 in a manifest (current.json);
// the cache is checked against the hash when it is opened, and a new
// deployment replaces it atomically: the new file is written and synced
// under its own name, then the manifest is replaced by rename, which is
// the moment the new model becomes current. A running stream learns of it
// through Current's channel and swaps the process between two
// classifications.
//
// Concurrency: safe for concurrent use; updates are serialised.
type Models struct {
	o ModelsOptions

	upd sync.Mutex // serialises Update

	mu        sync.Mutex
	cur       ModelFile
	ok        bool          // cur is usable
	changed   chan struct{} // closed when cur is replaced
	lastErr   string        // the last update's failure, "" after a success
	failures  uint64        // updates that failed
	lastCheck time.Time
	localStat os.FileInfo // the local file as last hashed
}

// manifestName is the cache's commit record.
const manifestName = "current.json"

// DefaultStallTimeout is how long a download may receive nothing: the
// Studio client's wait for response headers.
const DefaultStallTimeout = 2 * time.Minute

// ErrTooLarge is wrapped when a download passes ModelsOptions.MaxBytes.
var ErrTooLarge = errors.New("model over the size bound")

// ErrStalled is wrapped when a download received less than ProgressBytes
// in ModelsOptions.StallTimeout.
var ErrStalled = errors.New("download stalled")

// NewModels opens the model source. A cached download whose file is
// missing or does not match its hash is dropped (and fetched again by the
// next Update).
func NewModels(o ModelsOptions) (*Models, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Target == "" {
		o.Target = Target()
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = edgeimpulse.MaxModelBytes
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	m := &Models{o: o, changed: make(chan struct{})}
	switch {
	case o.Path != "":
		return m, nil
	case o.Studio == nil:
		return nil, errors.New("models: neither a path nor a Studio link")
	case o.Dir == "":
		return nil, errors.New("models: no cache directory")
	case o.Target == "":
		return nil, fmt.Errorf("models: Studio builds no runner for %s; set the target", runtime.GOARCH)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	m.sweepDownloads()
	cur, err := m.openCache()
	if err != nil {
		o.Logger.Warn("cached model dropped; it will be downloaded again", "dir", o.Dir, "err", err)
		_ = os.Remove(filepath.Join(o.Dir, manifestName))
		return m, nil
	}
	if cur.Name != "" {
		m.cur, m.ok = cur, true
	}
	return m, nil
}

// sweepDownloads removes partial downloads a crash or power loss left in
// the cache (fetch removes its own otherwise): a model can be a large part
// of a small SD card. Only this source writes in Dir.
func (m *Models) sweepDownloads() {
	left, _ := filepath.Glob(filepath.Join(m.o.Dir, ".download-*"))
	for _, p := range left {
		if err := os.Remove(p); err != nil {
			m.o.Logger.Warn("cannot remove a partial model download", "file", p, "err", err)
			continue
		}
		m.o.Logger.Info("removed a partial model download left by an earlier run", "file", filepath.Base(p))
	}
}

// openCache reads the manifest and checks its file's hash.
func (m *Models) openCache() (ModelFile, error) {
	b, err := os.ReadFile(filepath.Join(m.o.Dir, manifestName))
	if errors.Is(err, os.ErrNotExist) {
		return ModelFile{}, nil
	}
	if err != nil {
		return ModelFile{}, err
	}
	var f ModelFile
	if err := json.Unmarshal(b, &f); err != nil {
		return ModelFile{}, fmt.Errorf("%s: %w", manifestName, err)
	}
	if f.Name == "" || f.Name != filepath.Base(f.Name) {
		return ModelFile{}, fmt.Errorf("%s names no file in the cache", manifestName)
	}
	if f.Target != m.o.Target || f.Variant != m.o.Variant {
		return ModelFile{}, fmt.Errorf("cached %s/%q, configured %s/%q", f.Target, f.Variant, m.o.Target, m.o.Variant)
	}
	f.Path = filepath.Join(m.o.Dir, f.Name)
	sum, size, err := hashFile(f.Path)
	if err != nil {
		return ModelFile{}, err
	}
	if sum != f.SHA256 || size != f.Size {
		return ModelFile{}, fmt.Errorf("%s: hash %s, %d bytes; the manifest says %s, %d bytes", f.Name, short(sum), size, short(f.SHA256), f.Size)
	}
	return f, nil
}

// Current returns the model to run and a channel closed when it is
// replaced. Before the first download it returns an error saying why
// there is none yet. A local file is hashed again whenever its size or
// time changed.
func (m *Models) Current() (ModelFile, <-chan struct{}, error) {
	if m.o.Path != "" {
		return m.local()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ok {
		why := m.lastErr
		if why == "" {
			why = "not downloaded yet"
		}
		return ModelFile{}, m.changed, fmt.Errorf("no model: %s", why)
	}
	return m.cur, m.changed, nil
}

func (m *Models) local() (ModelFile, <-chan struct{}, error) {
	fi, err := os.Stat(m.o.Path)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		return ModelFile{}, m.changed, fmt.Errorf("model: %w", err)
	}
	if m.localStat == nil || !os.SameFile(fi, m.localStat) || fi.Size() != m.localStat.Size() || !fi.ModTime().Equal(m.localStat.ModTime()) {
		sum, size, err := hashFile(m.o.Path)
		if err != nil {
			return ModelFile{}, m.changed, fmt.Errorf("model: %w", err)
		}
		m.cur = ModelFile{Path: m.o.Path, Name: filepath.Base(m.o.Path), SHA256: sum, Size: size}
		m.localStat, m.ok = fi, true
	}
	return m.cur, m.changed, nil
}

// Local reports whether the model is a configured file (no downloads).
func (m *Models) Local() bool { return m.o.Path != "" }

// ModelsStatus is the source's state for /status.
type ModelsStatus struct {
	Current   ModelFile
	OK        bool
	LastError string
	LastCheck time.Time
	Failures  uint64 // updates that failed since the source was opened
}

// Status returns the source's state.
func (m *Models) Status() ModelsStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return ModelsStatus{Current: m.cur, OK: m.ok, LastError: m.lastErr, LastCheck: m.lastCheck, Failures: m.failures}
}

// Update asks Studio for the newest deployment and, when it is not the
// one cached, downloads it and makes it current. It reports whether the
// current model changed. For a local file it only notices a changed file.
func (m *Models) Update(ctx context.Context) (ModelFile, bool, error) {
	if m.o.Path != "" {
		m.mu.Lock()
		before := m.cur
		m.mu.Unlock()
		after, _, err := m.local()
		if err != nil {
			return ModelFile{}, false, err
		}
		if after.SHA256 == before.SHA256 {
			return after, false, nil
		}
		m.mu.Lock()
		close(m.changed)
		m.changed = make(chan struct{})
		m.mu.Unlock()
		return after, true, nil
	}
	m.upd.Lock()
	defer m.upd.Unlock()
	f, changed, err := m.fetch(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastCheck = m.o.Clock.Now()
	if err != nil {
		m.lastErr = err.Error()
		m.failures++
		return ModelFile{}, false, err
	}
	m.lastErr = ""
	if changed {
		old := m.cur
		m.cur, m.ok = f, true
		close(m.changed)
		m.changed = make(chan struct{})
		m.o.Logger.Info("model updated", "project", f.Project, "version", f.Version, "sha256", short(f.SHA256),
			"previous_version", old.Version)
	}
	return m.cur, changed, nil
}

// fetch downloads the newest deployment unless it is already current, and
// commits it to the cache. Called with upd held.
func (m *Models) fetch(ctx context.Context) (ModelFile, bool, error) {
	d, err := m.deployment(ctx)
	if err != nil {
		return ModelFile{}, false, err
	}
	m.mu.Lock()
	cur, ok := m.cur, m.ok
	m.mu.Unlock()
	if ok && cur.Project == d.Project && cur.Version == d.Version {
		return cur, false, nil
	}
	tmp, err := os.CreateTemp(m.o.Dir, ".download-*")
	if err != nil {
		return ModelFile{}, false, fmt.Errorf("models: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, h, head, err := m.download(ctx, d, tmp)
	if err == nil {
		err = checkExecutable(head)
	}
	if err == nil {
		err = tmp.Chmod(0o700)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ModelFile{}, false, fmt.Errorf("models: download v%d: %w", d.Version, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	f := ModelFile{SHA256: sum, Size: n, Project: d.Project, Version: d.Version, Target: d.Target, Variant: d.Variant,
		Fetched: m.o.Clock.Now().UTC()}
	if ok && cur.SHA256 == sum {
		// A new version number for the same bytes: keep the file, record
		// the version.
		f.Name, f.Path = cur.Name, cur.Path
		if err := m.writeManifest(f); err != nil {
			return ModelFile{}, false, err
		}
		m.mu.Lock()
		m.cur = f
		m.mu.Unlock()
		return f, false, nil
	}
	f.Name = fmt.Sprintf("model-v%d-%s.eim", d.Version, sum[:12])
	f.Path = filepath.Join(m.o.Dir, f.Name)
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return ModelFile{}, false, fmt.Errorf("models: %w", err)
	}
	if err := atomicfile.SyncDir(m.o.Dir); err != nil {
		return ModelFile{}, false, fmt.Errorf("models: %w", err)
	}
	if err := m.writeManifest(f); err != nil {
		return ModelFile{}, false, err
	}
	m.prune(f.Name)
	return f, true, nil
}

// deployment asks Studio for the newest deployment, within StallTimeout.
func (m *Models) deployment(ctx context.Context) (edgeimpulse.Deployment, error) {
	qctx, cancel := context.WithTimeout(ctx, m.o.StallTimeout)
	defer cancel()
	d, err := m.o.Studio.Deployment(qctx, m.o.Target, m.o.Variant)
	if err != nil && qctx.Err() != nil && ctx.Err() == nil {
		return d, fmt.Errorf("models: no answer about the deployment in %v: %w", m.o.StallTimeout, err)
	}
	return d, err
}

// download writes deployment d to tmp, bounded in size and in silence,
// and returns its size, hash and first bytes.
func (m *Models) download(ctx context.Context, d edgeimpulse.Deployment, tmp io.Writer) (int64, hash.Hash, []byte, error) {
	dctx, watch := watchStall(ctx, m.o.StallTimeout)
	meter := &meter{max: m.o.MaxBytes, watch: watch}
	h := sha256.New()
	head := &headWriter{max: 64}
	// The meter first: a write past the bound reaches neither the file
	// nor the hash.
	n, err := m.o.Studio.Download(dctx, d, io.MultiWriter(meter, tmp, h, head))
	stalled := watch.stop()
	if err != nil && stalled && ctx.Err() == nil {
		err = fmt.Errorf("%w: under %d KiB in %v, after %d bytes: %w", ErrStalled, ProgressBytes>>10, m.o.StallTimeout, meter.n, err)
	}
	return n, h, head.b, err
}

// writeManifest commits f as the current model (atomic replace).
func (m *Models) writeManifest(f ModelFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(m.o.Dir, manifestName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	return nil
}

// prune removes cached models other than keep. A process still running an
// older one keeps its file open; Linux frees it when the process ends.
func (m *Models) prune(keep string) {
	olds, _ := filepath.Glob(filepath.Join(m.o.Dir, "model-*.eim"))
	for _, p := range olds {
		if filepath.Base(p) != keep {
			if err := os.Remove(p); err != nil {
				m.o.Logger.Warn("cannot remove an old model", "file", p, "err", err)
			}
		}
	}
}

// Run keeps the model current until ctx ends: it fetches one at once when
// none is cached (retrying with backoff until it has one), then asks
// Studio again every every (0: never; newModelAvailable still updates). A
// local file needs nothing and Run returns at once.
func (m *Models) Run(ctx context.Context, every time.Duration) {
	if m.o.Path != "" {
		return
	}
	bo := retry.New(retry.Policy{Min: 5 * time.Second, Max: 10 * time.Minute, Jitter: 0.2})
	for ctx.Err() == nil {
		_, _, err := m.Current()
		if err == nil {
			break
		}
		if _, _, err = m.Update(ctx); err == nil {
			break
		}
		wait := bo.NextFor(err)
		m.o.Logger.Warn("model download failed; retrying", "err", err, "retry_in", wait.Round(time.Second))
		if m.o.Clock.Sleep(ctx, wait) != nil {
			return
		}
	}
	if every <= 0 {
		<-ctx.Done()
		return
	}
	t := clock.NewTicker(ctx, m.o.Clock, every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, _, err := m.Update(ctx); err != nil && ctx.Err() == nil {
				m.o.Logger.Warn("checking for a newer model failed", "err", err)
			}
		}
	}
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// meter counts a download's bytes, refuses a write that would take them
// past max, and tells the stall watch that data came.
type meter struct {
	max, n int64
	fresh  int64 // bytes since the watch last heard of progress
	watch  *stallWatch
}

// ProgressBytes is what a download must receive in each StallTimeout: a
// peer that trickles less (a byte a minute) is stalled, though never
// silent. 16 KiB in two minutes is 136 bytes a second, far below a
// cellular link.
const ProgressBytes = 16 << 10

func (w *meter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, w.max)
	}
	w.n += int64(len(p))
	if w.fresh += int64(len(p)); w.fresh >= ProgressBytes {
		w.fresh = 0
		w.watch.progress()
	}
	return len(p), nil
}

// stallWatch cancels a download's context once too little data came for a
// while (meter tells it of every ProgressBytes).
// It runs on the wall clock, like the transport's own timeouts: a fake
// clock in tests must not cut real sockets.
//
// Concurrency: progress is called by the download's goroutine; stop, once,
// by the owner after the download returned; it ends the watch's goroutine
// and waits for it.
type stallWatch struct {
	tick    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	stalled bool // set by run before exited closes
}

// watchStall starts a watch over ctx that cancels the returned context
// after d without progress.
func watchStall(ctx context.Context, d time.Duration) (context.Context, *stallWatch) {
	ctx, cancel := context.WithCancel(ctx)
	w := &stallWatch{tick: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	go w.run(cancel, d)
	return ctx, w
}

func (w *stallWatch) run(cancel context.CancelFunc, d time.Duration) {
	defer close(w.exited)
	defer cancel()
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-w.tick:
			t.Reset(d)
		case <-t.C:
			w.stalled = true
			return
		case <-w.done:
			return
		}
	}
}

func (w *stallWatch) progress() {
	select {
	case w.tick <- struct{}{}:
	default: // one pending tick is enough
	}
}

// stop ends the watch and reports whether it cut the download.
func (w *stallWatch) stop() bool {
	close(w.done)
	<-w.exited
	return w.stalled
}

// headWriter keeps the first max bytes written.
type headWriter struct {
	max int
	b   []byte
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// checkExecutable refuses a download that is no program for this board: an
// error page, or a build for another architecture (an ELF header's machine
// field). Outside Linux (development machines) only the emptiness is
// checked.
func checkExecutable(head []byte) error {
	if len(head) == 0 {
		return errors.New("empty file")
	}
	if runtime.GOOS != "linux" {
		return nil
	}
	if len(head) < 20 || !bytes.HasPrefix(head, []byte("\x7fELF")) {
		t := strings.TrimSpace(string(head[:min(len(head), 40)]))
		return fmt.Errorf("not a Linux executable (starts %q)", t)
	}
	le := head[5] == 1
	machine := int(head[18]) | int(head[19])<<8
	if !le {
		machine = int(head[19]) | int(head[18])<<8
	}
	want := map[string]int{"amd64": 62, "arm64": 183, "arm": 40, "386": 3, "riscv64": 243}[runtime.GOARCH]
	if want != 0 && machine != want {
		return fmt.Errorf("an executable for ELF machine %d, not this board's %s", machine, runtime.GOARCH)
	}
	return nil
}
