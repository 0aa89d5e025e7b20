// Package eitest is an in-process fake of Edge Impulse's remote management
// WebSocket and ingestion service, like net/http/httptest. It behaves as
// docs/protocols/edge-impulse.md describes (§8 says what it copies): it answers
// in the encoding of the device's Hello frame (text JSON, binary CBOR), refuses
// a wrong API key with hello:false, verifies upload signatures byte-exactly and
// records what it received. Tests script Studio (sample requests, snapshot
// start/stop) and inject faults (drop the socket, stall, fail uploads with
// 5xx).
//
// Concurrency: all methods are safe for concurrent use. Close stops the
// server and waits for every goroutine it started.
package eitest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/httpx/httpxtest"
	"github.com/edge-agent/edge-agent/internal/selfsigned"
)

// Options configures a Server.
type Options struct {
	// Listen is the address; default 127.0.0.1:0.
	Listen string
	// APIKey is the key the fake accepts; default "ei_sim_key".
	APIKey string
	// HMACKey is sent in sample requests and used to verify uploads;
	// default "sim-hmac-key-0123456789abcdef".
	HMACKey string
	Logger  *slog.Logger
	// TLS serves wss:// and https:// with a fresh self-signed certificate
	// (CertPEM returns it, for the link's ca_file).
	TLS bool
	// MaxHistory bounds the messages, Hellos, uploads and stored-file
	// hashes kept, for long `sim` runs: past it the oldest half goes.
	// 0 keeps everything (tests).
	MaxHistory int
}

// Hello is a device's Hello as received.
type Hello struct {
	Encoding string // json | cbor (from the frame type)
	Fields   map[string]any
	Accepted bool
}

// Message is one device → server message after the Hello (snapshot frames
// are counted in Frames instead).
type Message struct {
	Type   string // its first known key, e.g. sampleStarted
	Fields map[string]any
	At     time.Time
}

// Upload is one ingestion request.
type Upload struct {
	Path     string
	Status   int
	FileName string
	Label    string
	// Hash is the body's SHA-256, the idempotency check: a sample delivered
	// twice shows up twice with the same hash (and 409 the second time).
	Hash        string
	Size        int
	ContentType string
	// Header holds the request's headers, x-api-key removed.
	Header http.Header
	// StoredName is the name ingestion stored the file under: the file name
	// (x-file-name, or the multipart part's name) with a unique id appended
	// when the request sent x-add-date-id: 1, as the real service does
	// (docs/protocols/edge-impulse.md §5.2). Without the header two samples
	// of one label share a name.
	StoredName string
	Err        string // why it was refused
	// File is set for verified /data uploads.
	File *File
	// JPEG sizes for /files uploads.
	ImageWidth, ImageHeight int
	At                      time.Time
}

// Frame is one received snapshot frame.
type Frame struct {
	At            time.Time
	Width, Height int
	FileName      string
}

// maxFrames bounds the recorded frames (memory stays flat in long demos).
const maxFrames = 4096

// Server is the fake.
type Server struct {
	opts Options
	log  *slog.Logger
	ln   net.Listener
	srv  *http.Server
	cert []byte // PEM, when TLS
	up   websocket.Upgrader
	wg   sync.WaitGroup
	// redirect answers ingestion with a redirect (RedirectUploads).
	redirect httpxtest.Redirect

	mu          sync.Mutex
	conns       map[*deviceConn]struct{}
	dev         *deviceConn // the live device (one per server, like one per deviceId)
	hellos      []Hello
	msgs        []Message
	msgBase     int // messages trimmed by MaxHistory (absolute index of msgs[0])
	uploads     []Upload
	frames      []Frame
	framesTotal int
	malformed   int
	uploadFail  int    // status to answer uploads with; 0 = normal
	retryAfter  string // Retry-After of the uploadFail answers ("" none)
	stalled     bool
	echo        bool          // EchoCredentials
	stallCh     chan struct{} // closed when the stall ends
	stored      map[string]bool
	dateIDs     int // ids handed out for x-add-date-id
	changed     chan struct{}
	closed      bool

	st studio // the Studio REST routes (studio.go), under their own lock
}

type deviceConn struct {
	conn *websocket.Conn
	enc  string
	wmu  sync.Mutex
}

// New starts a fake server.
func New(opts Options) (*Server, error) {
	opts.Listen = cmp.Or(opts.Listen, "127.0.0.1:0")
	opts.APIKey = cmp.Or(opts.APIKey, "ei_sim_key")
	opts.HMACKey = cmp.Or(opts.HMACKey, "sim-hmac-key-0123456789abcdef")
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("eitest: listen: %w", err)
	}
	s := &Server{opts: opts, log: opts.Logger.With("fake", "edgeimpulse"), ln: ln,
		conns: map[*deviceConn]struct{}{}, stored: map[string]bool{}, changed: make(chan struct{})}
	if opts.TLS {
		cert, pemBytes, err := selfsigned.Localhost("eitest")
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.cert = pemBytes
		s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.root)
	mux.HandleFunc("GET /status", s.status)
	mux.Handle("POST /api/{category}/{kind}", s.redirect.Wrap(http.HandlerFunc(s.ingest)))
	s.studioRoutes(mux)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.wg.Go(func() { _ = s.srv.Serve(s.ln) })
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// WSURL is the remote-management URL.
func (s *Server) WSURL() string {
	if s.cert != nil {
		return "wss://" + s.Addr() + "/"
	}
	return "ws://" + s.Addr() + "/"
}

// IngestionURL is the ingestion base URL.
func (s *Server) IngestionURL() string {
	if s.cert != nil {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// CertPEM is the server's self-signed certificate (nil without TLS).
func (s *Server) CertPEM() []byte { return s.cert }

// APIKey is the accepted key.
func (s *Server) APIKey() string { return locked(s, func() string { return s.opts.APIKey }) }

// SetAPIKey revokes the accepted key and accepts key instead, as a project
// owner rotating the API key in Studio: the old key gets hello:false and
// ingestion 401 from now on. Open sockets are left alone (Drop them to make
// the device say Hello again).
func (s *Server) SetAPIKey(key string) {
	s.mu.Lock()
	s.opts.APIKey = key
	s.mu.Unlock()
	s.log.Info("API key rotated")
}

// HMACKey is the key sample requests carry.
func (s *Server) HMACKey() string { return s.opts.HMACKey }

// Close stops the server, closes every device socket and waits.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.conn.Close()
	}
	if s.stallCh != nil {
		close(s.stallCh)
		s.stallCh = nil
	}
	s.mu.Unlock()
	s.st.releaseHeld()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	return err
}

// locked returns what f reads of the server's state, read under s.mu.
func locked[T any](s *Server, f func() T) T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f()
}

// notifyLocked wakes Wait callers.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Wait blocks until cond() holds (checked after every recorded event) or ctx
// ends. cond may call the Server's accessors.
func (s *Server) Wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("eitest wait: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Hellos returns every Hello received.
func (s *Server) Hellos() []Hello { return locked(s, func() []Hello { return slices.Clone(s.hellos) }) }

// Messages returns the device's messages, oldest first (the newest
// MaxHistory when bounded).
func (s *Server) Messages() []Message {
	return locked(s, func() []Message { return slices.Clone(s.msgs) })
}

// MessageCount counts every message the device sent, trimmed ones included:
// the absolute index of the next message.
func (s *Server) MessageCount() int { return locked(s, func() int { return s.msgBase + len(s.msgs) }) }

// MessageTypes returns the types of the device's messages from absolute
// index from (see MessageCount) on.
func (s *Server) MessageTypes(from int) []string {
	var out []string
	for _, m := range s.messagesFrom(from) {
		out = append(out, m.Type)
	}
	return out
}

// messagesFrom returns the kept messages from absolute index from on.
func (s *Server) messagesFrom(from int) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := max(from-s.msgBase, 0)
	if i >= len(s.msgs) {
		return nil
	}
	return append([]Message(nil), s.msgs[i:]...)
}

// trimLocked keeps the newest limit/2 entries of list once it holds more
// than limit (0: no limit) and returns how many went.
func trimLocked[T any](list *[]T, limit int) int {
	if limit <= 0 || len(*list) <= limit {
		return 0
	}
	n := len(*list) - limit/2
	*list = append((*list)[:0], (*list)[n:]...)
	return n
}

// Uploads returns every ingestion request, oldest first.
func (s *Server) Uploads() []Upload {
	return locked(s, func() []Upload { return slices.Clone(s.uploads) })
}

// Frames returns the recorded snapshot frames (the newest maxFrames).
func (s *Server) Frames() []Frame { return locked(s, func() []Frame { return slices.Clone(s.frames) }) }

// Malformed counts device messages the fake could not parse.
func (s *Server) Malformed() int { return locked(s, func() int { return s.malformed }) }

// Connected reports whether a device is connected and accepted.
func (s *Server) Connected() bool { return locked(s, func() bool { return s.dev != nil }) }

// EchoCredentials makes the fake hostile (or just careless): a refused
// Hello's reason and a failed upload's body repeat the API key the device
// sent, followed by terminal escape sequences (set the window title, clear
// the screen) and a newline, as a server echoing its input would.
func (s *Server) EchoCredentials(on bool) {
	s.mu.Lock()
	s.echo = on
	s.mu.Unlock()
}

// echoTail is what EchoCredentials appends after the echoed credential.
const echoTail = "\x1b]0;pwned\x07\x1b[2J\nforged log line"

func (s *Server) echoing() bool { return locked(s, func() bool { return s.echo }) }

// FailUploads makes ingestion answer status (e.g. 503) until called with 0.
func (s *Server) FailUploads(status int) {
	s.mu.Lock()
	s.uploadFail = status
	s.mu.Unlock()
}

// SetUploadRetryAfter sets the Retry-After header of the answers FailUploads
// makes ("" sends none), e.g. "315360000" or an HTTP date years ahead, as a
// broken or hostile service would.
func (s *Server) SetUploadRetryAfter(v string) {
	s.mu.Lock()
	s.retryAfter = v
	s.mu.Unlock()
}

// RedirectUploads makes ingestion answer every upload with status (301, 302,
// 303, 307 or 308) and Location target + the request's path, like a front
// redirecting to another host, until called with status 0. Redirected
// requests are not recorded as uploads.
func (s *Server) RedirectUploads(status int, target string) {
	s.redirect.Set(httpxtest.Rule{Prefix: "/api/", Status: status, Target: target})
}

// Redirected counts the uploads answered with a redirect.
func (s *Server) Redirected() int { return s.redirect.Count() }

// Stall stops (true) or resumes (false) reading from the device socket: no
// messages are handled and no pongs are sent while stalled, like a server
// that hangs.
func (s *Server) Stall(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on == s.stalled {
		return
	}
	s.stalled = on
	if on {
		s.stallCh = make(chan struct{})
	} else if s.stallCh != nil {
		close(s.stallCh)
		s.stallCh = nil
	}
}

func (s *Server) isStalled() bool { return locked(s, func() bool { return s.stalled }) }

// Drop closes the device's socket abruptly (no close frame).
func (s *Server) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev != nil {
		s.dev.conn.Close()
	}
}

// SampleRequest is a Studio sample request (docs/protocols/edge-impulse.md
// §4.4), its fields in the order the real service sends them. It is declared
// here, not taken from the link, so that the fake states the wire names on its
// own.
type SampleRequest struct {
	Path     string  `json:"path"`
	Label    string  `json:"label"`
	Length   float64 `json:"length"`
	Interval float64 `json:"interval"`
	HMACKey  string  `json:"hmacKey"`
	Sensor   string  `json:"sensor"`
}

// RequestSample sends a sample request to the connected device (HMACKey and
// Path default to the fake's key and /api/training/data).
func (s *Server) RequestSample(r SampleRequest) error {
	if r.HMACKey == "" {
		r.HMACKey = s.opts.HMACKey
	}
	if r.Path == "" {
		r.Path = "/api/training/data"
	}
	return s.Send(map[string]any{"sample": r})
}

// StartSnapshot asks for snapshot frames ("low" or "high"; "" omits the
// field, which the device must treat as low).
func (s *Server) StartSnapshot(resolution string) error {
	m := map[string]any{"startSnapshot": true}
	if resolution != "" {
		m["resolution"] = resolution
	}
	return s.Send(m)
}

// StopSnapshot ends the stream.
func (s *Server) StopSnapshot() error { return s.Send(map[string]any{"stopSnapshot": true}) }

// Send writes any message to the connected device in its encoding.
func (s *Server) Send(v any) error {
	s.mu.Lock()
	d := s.dev
	s.mu.Unlock()
	if d == nil {
		return errors.New("eitest: no device connected")
	}
	return d.write(v)
}

// SendRaw writes raw bytes (text frame for JSON devices, binary for CBOR),
// for malformed-input tests.
func (s *Server) SendRaw(b []byte) error {
	s.mu.Lock()
	d := s.dev
	s.mu.Unlock()
	if d == nil {
		return errors.New("eitest: no device connected")
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return d.conn.WriteMessage(d.frameType(), b)
}

func (d *deviceConn) frameType() int {
	if d.enc == "cbor" {
		return websocket.BinaryMessage
	}
	return websocket.TextMessage
}

func (d *deviceConn) write(v any) error {
	var b []byte
	var err error
	if d.enc == "cbor" {
		b, err = cbor.Marshal(v)
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return d.conn.WriteMessage(d.frameType(), b)
}

var msgDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{DefaultMapType: reflect.TypeOf(map[string]any(nil))}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

func decode(typ int, b []byte) (map[string]any, string, error) {
	var m map[string]any
	if typ == websocket.BinaryMessage {
		err := msgDec.Unmarshal(b, &m)
		return m, "cbor", err
	}
	err := json.Unmarshal(b, &m)
	return m, "json", err
}

var deviceTypes = []string{"hello", "sample", "sampleStarted", "sampleProcessing", "sampleReading",
	"sampleUploading", "sampleFinished", "snapshotStarted", "snapshotStopped", "snapshotFailed", "snapshotFrame",
	"inferenceStreamStarted", "inferenceStreamStopped", "inferenceStreamFailed", "impulseRecord",
	"modelUpdateSuccess", "impulseRecordsResponse"}

func msgType(m map[string]any) string {
	for _, k := range deviceTypes {
		if _, ok := m[k]; ok {
			return k
		}
	}
	return ""
}

// root serves the WebSocket (remote management is on /) and, for plain
// requests, the status JSON.
func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		s.status(w, r)
		return
	}
	conn, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	d := &deviceConn{conn: conn}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conns[d] = struct{}{}
	// Hijacked connections are not tracked by http.Server.Shutdown: Close
	// closes them and waits here. closed is checked under mu before Add, so
	// no Add can follow Close's Wait.
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.serveDevice(d)
}

func (s *Server) serveDevice(d *deviceConn) {
	defer func() {
		d.conn.Close()
		s.mu.Lock()
		delete(s.conns, d)
		if s.dev == d {
			s.dev = nil
			s.log.Info("device disconnected")
		}
		s.notifyLocked()
		s.mu.Unlock()
	}()
	d.conn.SetReadLimit(64 << 20)
	typ, b, err := d.conn.ReadMessage()
	if err != nil {
		return
	}
	m, enc, err := decode(typ, b)
	d.enc = enc
	if err != nil || msgType(m) != "hello" {
		_ = d.write(map[string]any{"err": "Failed to parse message"})
		return
	}
	hm, _ := m["hello"].(map[string]any)
	key, _ := hm["apiKey"].(string)
	h := Hello{Encoding: enc, Fields: hm, Accepted: key == s.APIKey() && hm != nil}
	if !h.Accepted {
		s.mu.Lock()
		s.hellos = append(s.hellos, h)
		trimLocked(&s.hellos, s.opts.MaxHistory)
		s.notifyLocked()
		s.mu.Unlock()
		s.log.Info("hello refused: invalid API key")
		reason := "Invalid API key"
		if s.echoing() {
			reason += " " + key + echoTail
		}
		_ = d.write(map[string]any{"hello": false, "err": reason})
		return
	}
	// Reply before the device becomes scriptable, so no Studio request can
	// overtake the hello reply.
	if err := d.write(map[string]any{"hello": true}); err != nil {
		return
	}
	s.mu.Lock()
	s.hellos = append(s.hellos, h)
	trimLocked(&s.hellos, s.opts.MaxHistory)
	old := s.dev
	s.dev = d
	s.notifyLocked()
	s.mu.Unlock()
	if old != nil && old != d {
		old.conn.Close() // one connection per device
	}
	s.log.Info("device connected", "encoding", enc, "device_id", hm["deviceId"], "sensors", sensorNames(hm))
	// A stalled server answers no pings either (gorilla answers them inside
	// ReadMessage, which keeps running while a message is awaited).
	d.conn.SetPingHandler(func(data string) error {
		if s.isStalled() {
			return nil
		}
		d.wmu.Lock()
		defer d.wmu.Unlock()
		err := d.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		s.mu.Lock()
		stall := s.stallCh
		s.mu.Unlock()
		if stall != nil {
			<-stall
			continue
		}
		typ, b, err := d.conn.ReadMessage()
		if err != nil {
			return
		}
		s.mu.Lock()
		stall = s.stallCh
		s.mu.Unlock()
		if stall != nil {
			<-stall // hold the message until the stall ends
		}
		m, _, err := decode(typ, b)
		if err != nil || m == nil {
			s.mu.Lock()
			s.malformed++
			s.notifyLocked()
			s.mu.Unlock()
			_ = d.write(map[string]any{"err": "Failed to parse message"})
			continue
		}
		s.record(m)
		if msgType(m) == "impulseRecord" {
			// Studio acknowledges every record (docs/protocols/eim.md §9).
			_ = d.write(map[string]any{"impulseRecordAck": true, "index": m["index"]})
		}
	}
}

func sensorNames(hm map[string]any) []string {
	var out []string
	ss, _ := hm["sensors"].([]any)
	for _, x := range ss {
		if m, ok := x.(map[string]any); ok {
			n, _ := m["name"].(string)
			out = append(out, n)
		}
	}
	return out
}

func (s *Server) record(m map[string]any) {
	t := msgType(m)
	now := time.Now()
	if t == "snapshotFrame" {
		f := Frame{At: now}
		f.FileName, _ = m["fileName"].(string)
		if b64, ok := m["snapshotFrame"].(string); ok {
			if img, err := base64.StdEncoding.DecodeString(b64); err == nil {
				if cfg, err := jpeg.DecodeConfig(bytes.NewReader(img)); err == nil {
					f.Width, f.Height = cfg.Width, cfg.Height
				}
			}
		}
		s.mu.Lock()
		s.framesTotal++
		s.frames = append(s.frames, f)
		trimLocked(&s.frames, maxFrames)
		s.notifyLocked()
		s.mu.Unlock()
		return
	}
	switch t {
	case "sample", "sampleFinished", "snapshotStarted", "snapshotStopped", "snapshotFailed":
		s.log.Info("device says", "message", t, "fields", m)
	default:
		s.log.Debug("device says", "message", t, "fields", m)
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, Message{Type: t, Fields: m, At: now})
	s.msgBase += trimLocked(&s.msgs, s.opts.MaxHistory)
	s.notifyLocked()
	s.mu.Unlock()
}

// ingest is POST /api/{training|testing|anomaly}/{data|files}.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	cat, kind := r.PathValue("category"), r.PathValue("kind")
	u := Upload{Path: r.URL.Path, At: time.Now(), ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone()}
	u.Header.Del("x-api-key")
	u.FileName, _ = url.PathUnescape(r.Header.Get("x-file-name"))
	u.Label, _ = url.PathUnescape(r.Header.Get("x-label"))
	body, err := io.ReadAll(io.LimitReader(r.Body, 128<<20))
	u.Size = len(body)
	sum := sha256.Sum256(body)
	u.Hash = hex.EncodeToString(sum[:])
	reply := func(code int, msg string) {
		u.Status = code
		if code >= 300 {
			u.Err = msg
		}
		s.mu.Lock()
		s.uploads = append(s.uploads, u)
		trimLocked(&s.uploads, s.opts.MaxHistory)
		s.notifyLocked()
		s.mu.Unlock()
		if code == http.StatusOK && kind == "files" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"success":true,"files":[{"success":true,"fileName":%q}]}`, u.StoredName)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		io.WriteString(w, msg)
	}
	s.mu.Lock()
	fail, retryAfter := s.uploadFail, s.retryAfter
	s.mu.Unlock()
	if fail != 0 && retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	switch {
	case err != nil:
		reply(http.StatusBadRequest, "cannot read body")
	case cat != "training" && cat != "testing" && cat != "anomaly" || kind != "data" && kind != "files":
		reply(http.StatusNotFound, "unknown endpoint")
	case r.Header.Get("x-api-key") != s.APIKey():
		reply(http.StatusUnauthorized, "invalid API key")
	case fail != 0:
		s.log.Info("upload failed on purpose", "status", fail, "path", u.Path)
		msg := "simulated failure"
		if s.echoing() {
			msg += " for key " + r.Header.Get("x-api-key") + echoTail
		}
		reply(fail, msg)
	case kind == "data":
		s.ingestData(r, &u, body, reply)
	default:
		s.ingestFiles(r, &u, body, reply)
	}
}

func (s *Server) ingestData(r *http.Request, u *Upload, body []byte, reply func(int, string)) {
	if u.FileName == "" {
		reply(421, "missing x-file-name")
		return
	}
	f, err := Verify(body, []byte(s.opts.HMACKey))
	if err != nil {
		s.log.Warn("upload refused", "path", u.Path, "err", err)
		reply(http.StatusBadRequest, "invalid message: "+err.Error())
		return
	}
	u.File = &f
	if s.duplicate(r, u.Hash) {
		reply(http.StatusConflict, "duplicate file")
		return
	}
	u.StoredName = s.storedName(r, u.FileName)
	s.log.Info("sample received", "path", u.Path, "label", u.Label, "stored_as", u.StoredName, "encoding", f.Encoding,
		"rows", f.Rows, "axes", f.Sensors, "interval_ms", f.IntervalMs, "signature", "verified")
	reply(http.StatusOK, u.StoredName)
}

func (s *Server) ingestFiles(r *http.Request, u *Upload, body []byte, reply func(int, string)) {
	_, params, err := mime.ParseMediaType(u.ContentType)
	if err != nil || params["boundary"] == "" {
		reply(http.StatusBadRequest, "not multipart")
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	n := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			reply(http.StatusBadRequest, "bad multipart: "+err.Error())
			return
		}
		if p.FormName() != "data" {
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(p, 100<<20))
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			reply(http.StatusBadRequest, "part is not a JPEG: "+err.Error())
			return
		}
		u.FileName = p.FileName()
		u.ImageWidth, u.ImageHeight = cfg.Width, cfg.Height
		n++
	}
	if n == 0 {
		reply(http.StatusBadRequest, "no data part")
		return
	}
	if s.duplicate(r, u.Hash) {
		reply(http.StatusConflict, "duplicate file")
		return
	}
	u.StoredName = s.storedName(r, u.FileName)
	s.log.Info("image received", "path", u.Path, "label", u.Label, "file", u.FileName, "stored_as", u.StoredName,
		"size", fmt.Sprintf("%dx%d", u.ImageWidth, u.ImageHeight))
	reply(http.StatusOK, "")
}

// duplicate records hash and reports whether an identical file was already
// stored and the request asked to refuse duplicates.
func (s *Server) duplicate(r *http.Request, hash string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	dup := s.stored[hash]
	if limit := s.opts.MaxHistory; limit > 0 && len(s.stored) >= limit && !dup {
		clear(s.stored) // a sim run forgets old files: a re-sent old sample is stored again
	}
	s.stored[hash] = true
	return dup && r.Header.Get("x-disallow-duplicates") == "1"
}

// storedName is the name a stored file gets: name itself, or with
// x-add-date-id: 1 name followed by a unique id, so that repeated uploads
// of one label stay apart. (The real service's id format is its own; the
// fake's is a dot and eight hex digits.)
func (s *Server) storedName(r *http.Request, name string) string {
	if r.Header.Get("x-add-date-id") != "1" {
		return name
	}
	s.mu.Lock()
	s.dateIDs++
	n := s.dateIDs
	s.mu.Unlock()
	return fmt.Sprintf("%s.%08x", name, n)
}

// status serves a JSON summary: what a demo user looks at.
func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	type up struct {
		Path, Label, File, Stored, Encoding string
		Status, Rows                        int
		Verified                            bool
		At                                  time.Time
	}
	s.mu.Lock()
	out := struct {
		Connected bool           `json:"connected"`
		Hello     map[string]any `json:"hello,omitempty"`
		Encoding  string         `json:"encoding,omitempty"`
		Messages  int            `json:"messages"`
		Frames    int            `json:"snapshot_frames"`
		Uploads   []up           `json:"uploads"`
	}{Connected: s.dev != nil, Messages: s.msgBase + len(s.msgs), Frames: s.framesTotal, Uploads: []up{}}
	if n := len(s.hellos); n > 0 {
		h := s.hellos[n-1]
		out.Encoding = h.Encoding
		out.Hello = map[string]any{}
		for k, v := range h.Fields {
			if k != "apiKey" {
				out.Hello[k] = v
			}
		}
	}
	for _, u := range s.uploads {
		x := up{Path: u.Path, Label: u.Label, File: u.FileName, Stored: u.StoredName, Status: u.Status, At: u.At}
		if u.File != nil {
			x.Rows, x.Verified, x.Encoding = u.File.Rows, true, u.File.Encoding
		}
		out.Uploads = append(out.Uploads, x)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
