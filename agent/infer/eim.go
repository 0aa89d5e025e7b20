package infer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
)

// ProcessOptions configure how a model process is started.
type ProcessOptions struct {
	// RuntimeDir holds each process's private socket directory; empty
	// means RuntimeDir().
	RuntimeDir string
	// StartTimeout bounds the start: the socket appearing and the hello
	// answer (default 30 s; the SDKs wait 10 s for the socket and 60 s
	// for an answer, docs/protocols/eim.md §2).
	StartTimeout time.Duration
	// StopTimeout is how long a process may take to exit after SIGINT
	// before its group is killed (default 2 s).
	StopTimeout time.Duration
	Clock       clock.Clock
	Logger      *slog.Logger
}

func (o ProcessOptions) withDefaults() ProcessOptions {
	if o.RuntimeDir == "" {
		o.RuntimeDir = RuntimeDir()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 2 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// RuntimeDir is where model sockets go: systemd's RuntimeDirectory
// ($RUNTIME_DIRECTORY, /run/edge-agent under the shipped unit), else the
// temporary directory.
func RuntimeDir() string {
	if d := os.Getenv("RUNTIME_DIRECTORY"); d != "" {
		// systemd may list several, separated by ':'.
		d, _, _ = strings.Cut(d, ":")
		return d
	}
	return os.TempDir()
}

// Process is one running .eim model: the executable started with a socket
// path and nothing else (no shell, in its own process group), connected,
// and past its hello (docs/protocols/eim.md §2, §4).
//
// Concurrency: Classify is called by one goroutine at a time; Close may be
// called from any goroutine, also during a Classify (which then fails), and
// more than once.
type Process struct {
	path string
	opts ProcessOptions
	cmd  *exec.Cmd
	dir  string // private socket directory, removed by Close
	out  *tail  // the end of the model's stdout and stderr

	conn  net.Conn
	fr    *frameReader
	model Model
	id    int
	req   []byte // request buffer, reused

	exited  chan struct{} // closed once Wait returned; exitErr set before
	exitErr error

	closeOnce sync.Once
	closeErr  error
}

// ErrTimeout is wrapped when a model does not answer in time.
var ErrTimeout = errors.New("model did not answer in time")

// ErrExited is wrapped when the model process is gone.
var ErrExited = errors.New("model process exited")

// Start starts the model at path and waits for its hello. ctx bounds the
// start only; the process runs until Close.
func Start(ctx context.Context, path string, opts ProcessOptions) (*Process, error) {
	opts = opts.withDefaults()
	op := "start model " + path
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", op)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("%s: not executable (chmod +x it)", op)
	}
	if err := os.MkdirAll(opts.RuntimeDir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: runtime dir: %w", op, err)
	}
	dir, err := os.MkdirTemp(opts.RuntimeDir, "eim-")
	if err != nil {
		return nil, fmt.Errorf("%s: socket dir: %w", op, err)
	}
	sock := filepath.Join(dir, "runner.sock")
	if len(sock) >= 104 { // sun_path, minus room for the NUL, on every Unix
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: socket path %s is too long for a Unix socket (set RUNTIME_DIRECTORY shorter)", op, sock)
	}
	p := &Process{path: path, opts: opts, dir: dir, out: &tail{max: 4 << 10}, exited: make(chan struct{})}
	// The executable itself with one argument: no shell parses anything.
	p.cmd = &exec.Cmd{Path: path, Args: []string{path, sock}, Dir: dir, Stdout: p.out, Stderr: p.out,
		SysProcAttr: sysProcAttr(), WaitDelay: opts.StopTimeout}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	go func() { // owned by p: Close waits for exited
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.connect(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := p.hello(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return p, nil
}

// connect waits for the model to listen on its socket, as the SDKs do by
// retrying the connection (docs/protocols/eim.md §2).
func (p *Process) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	sock := filepath.Join(p.dir, "runner.sock")
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", sock)
		if err == nil {
			p.conn, p.fr = conn, newFrameReader(conn)
			return nil
		}
		select {
		case <-p.exited:
			return p.exitError("before it listened on its socket")
		default:
		}
		if p.opts.Clock.Sleep(ctx, 50*time.Millisecond) != nil {
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("%w: no socket after %s%s", ErrTimeout, p.opts.StartTimeout, p.out.suffix())
			}
			return ctx.Err()
		}
	}
}

func (p *Process) hello(ctx context.Context) error {
	p.id++
	p.req = append(p.req[:0], `{"hello":1,"id":`...)
	p.req = strconv.AppendInt(p.req, int64(p.id), 10)
	p.req = append(p.req, '}')
	b, err := p.exchange(ctx, p.opts.StartTimeout)
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	var m Model
	if err := decodeAnswer(b, p.id, &m); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if err := m.Params.check(); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	p.model = m
	return nil
}

// check refuses parameters no input could be built for.
func (pr Parameters) check() error {
	switch {
	case pr.InputFeaturesCount <= 0:
		return fmt.Errorf("%w: input_features_count %d", errGarbage, pr.InputFeaturesCount)
	case pr.InputFeaturesCount > 64<<20:
		return fmt.Errorf("%w: input_features_count %d is absurd", errGarbage, pr.InputFeaturesCount)
	case pr.LabelCount != len(pr.Labels):
		return fmt.Errorf("%w: label_count %d but %d labels", errGarbage, pr.LabelCount, len(pr.Labels))
	}
	return nil
}

// Model is what the model said in its hello.
func (p *Process) Model() Model { return p.model }

// Path is the executable the process runs.
func (p *Process) Path() string { return p.path }

// Classify sends one feature vector: a whole window, or with continuous one
// slice of slice_size values (classify_continuous, docs/protocols/eim.md
// §5.1). timeout bounds the exchange; a timeout, an I/O error or a garbage
// answer leave the process out of step, and the caller must Close it. A
// refusal by the model itself wraps ErrModel and leaves it usable.
func (p *Process) Classify(ctx context.Context, features []float32, continuous bool, timeout time.Duration) (Answer, error) {
	key := `{"classify":[`
	if continuous {
		key = `{"classify_continuous":[`
	}
	p.id++
	p.req = append(p.req[:0], key...)
	p.req = appendFeatures(p.req, features)
	p.req = append(p.req, `],"id":`...)
	p.req = strconv.AppendInt(p.req, int64(p.id), 10)
	p.req = append(p.req, '}')
	b, err := p.exchange(ctx, timeout)
	if err != nil {
		return Answer{}, err
	}
	var a Answer
	if err := decodeAnswer(b, p.id, &a); err != nil {
		return Answer{}, err
	}
	if err := a.check(p.model); err != nil {
		return Answer{}, err
	}
	return a, nil
}

// exchange writes p.req and reads one answer within timeout (socket
// deadlines are wall time). ctx ending aborts it.
func (p *Process) exchange(ctx context.Context, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout) // wall time: a socket deadline
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := p.conn.SetDeadline(deadline); err != nil {
		return nil, p.ioError(err, timeout)
	}
	stop := context.AfterFunc(ctx, func() { p.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// ctx ending sets a past deadline, so either step may fail for it: it
	// is then the context's error, not a model that timed out.
	if _, err := p.conn.Write(p.req); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, p.ioError(err, timeout)
	}
	b, err := p.fr.next()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, p.ioError(err, timeout)
	}
	return b, nil
}

// ioError names why the socket failed: the process died, it timed out, or
// the connection broke.
func (p *Process) ioError(err error, timeout time.Duration) error {
	if errors.Is(err, errGarbage) {
		return err
	}
	select {
	case <-p.exited:
		return p.exitError("during a request")
	default:
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: no answer within %s", ErrTimeout, timeout)
	}
	// The socket may break a moment before Wait sees the exit.
	t := clock.AfterTimer(p.opts.Clock, 100*time.Millisecond)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.exitError("during a request")
	case <-t.C():
	}
	return fmt.Errorf("model socket: %w", err)
}

func (p *Process) exitError(when string) error {
	status := "exit status 0"
	if p.exitErr != nil {
		status = p.exitErr.Error()
	}
	return fmt.Errorf("%w %s (%s)%s", ErrExited, when, status, p.out.suffix())
}

// Output is the end of what the model printed (stdout and stderr), for
// the log when it failed.
func (p *Process) Output() string { return p.out.String() }

// Close stops the model: SIGINT to its process group (the .eim frees its
// shared memory on it), then SIGKILL after StopTimeout, waits for the exit
// and removes the socket directory.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		if p.conn != nil {
			p.conn.Close()
		}
		signalGroup(p.cmd, syscall.SIGINT)
		t := clock.AfterTimer(p.opts.Clock, p.opts.StopTimeout)
		select {
		case <-p.exited:
		case <-t.C():
			p.opts.Logger.Warn("model did not exit on SIGINT; killing it", "model", p.path, "after", p.opts.StopTimeout)
			signalGroup(p.cmd, syscall.SIGKILL)
			<-p.exited
		}
		t.Stop()
		// A model that leaves a child behind holding the group: the group
		// goes with it.
		signalGroup(p.cmd, syscall.SIGKILL)
		if err := os.RemoveAll(p.dir); err != nil {
			p.closeErr = fmt.Errorf("close model %s: %w", p.path, err)
		}
	})
	return p.closeErr
}

// appendFeatures writes features as JSON numbers: integers (packed pixels,
// PCM) without a fraction, others with the shortest float32 form, which is
// what the model parses them back into.
func appendFeatures(b []byte, fs []float32) []byte {
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		if f != f || f > math.MaxFloat32 || f < -math.MaxFloat32 {
			f = 0 // NaN and infinities are not JSON; no sensor means them as data
		}
		if n := int32(f); float32(n) == f {
			b = strconv.AppendInt(b, int64(n), 10)
			continue
		}
		b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	}
	return b
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// suffix is ": <the last lines the model printed>" for an error, or "".
func (t *tail) suffix() string {
	s := t.String()
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return ": " + clip(strings.Join(lines, " | "))
}

var _ io.Writer = (*tail)(nil)
