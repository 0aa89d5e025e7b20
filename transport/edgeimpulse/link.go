package edgeimpulse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edge-agent/edge-agent/internal/httpx"
	"github.com/edge-agent/edge-agent/internal/logx"
	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/transport"
)

// Compile-time checks: the supervisor finds Work and Serve through these interfaces, so a
// drifted signature must not compile.
var (
	_ transport.Link    = (*Link)(nil)
	_ transport.Session = (*session)(nil)
	_ transport.Worker  = (*Link)(nil)
)

// Default limits the Hello advertises when a sensor does not state its own (the
// Linux client's values, docs/protocols/edge-impulse.md §4.1).
const (
	defaultMotionMax = 5 * time.Minute
	defaultAudioMax  = time.Hour
	cameraMaxS       = 60000
)

// handshakeTimeout bounds the WebSocket and TLS handshakes and the Hello
// exchange; writeTimeout bounds one frame's write.
const handshakeTimeout, writeTimeout = 10 * time.Second, 10 * time.Second

// Link is one configured Edge Impulse link. Dial makes one remote-management
// session; Work (transport.Worker) delivers spooled uploads for the link's
// whole life, independently of the socket, so an upload that failed is
// retried even while Studio is unreachable.
//
// Concurrency: Dial, Work and the sessions may run concurrently; the link's
// own state (the upload waiters) is guarded by wmu.
type Link struct {
	cfg  Config
	opts Options
	deps transport.Deps
	log  *slog.Logger
	enc  Encoding

	// offered are the configured sensors in Hello order.
	offered []offered
	// camera is the sensor snapshots stream from ("" when none).
	camera string

	dialer *websocket.Dialer
	httpTr *http.Transport
	http   *http.Client
	ingest *url.URL
	warns  warnGates
	key    *apiKey
	waits  *retry.PeerWaits // caps (and logs) the waits the service asks for
	drops  drops            // samples dropped, by reason

	wmu     sync.Mutex
	waiters map[string]chan error // spool id → the session waiting for its first attempt

	monitor atomic.Pointer[Monitor] // the on-device model reported on (SetMonitor); nil: none
}

type offered struct {
	hello string // the name Studio sees and sends back in sample.sensor
	name  string // the sensor's config name
}

// warnEvery is how often each rate-limited warning may be logged.
const warnEvery = time.Minute

// warnGates rate-limit the warnings a peer or a broken file could repeat
// without end (garbage frames, server errors, an unreadable key file,
// undecodable snapshot frames), so they cannot flood the journal. One gate
// per warning; each is safe for concurrent use (logx.Every).
type warnGates struct {
	apiKey, malformed, serverErr, snapshotScale logx.Every
}

func newWarnGates() warnGates {
	return warnGates{apiKey: logx.Every{Interval: warnEvery}, malformed: logx.Every{Interval: warnEvery},
		serverErr: logx.Every{Interval: warnEvery}, snapshotScale: logx.Every{Interval: warnEvery}}
}

// logLimited logs msg as a warning when gate lets it through on the link's
// clock, with the count of repeats held back since; a held-back repeat is
// logged at debug level.
func (l *Link) logLimited(gate *logx.Every, msg string, args ...any) {
	ok, n := gate.Allow(l.deps.Clock.Now())
	if !ok {
		l.log.Debug(msg, args...)
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.log.Warn(msg, args...)
}

// Options are tuning knobs for tests; the zero value is the production
// behaviour.
type Options struct {
	// UploadRetry is the backoff of spooled uploads; zero fields take
	// retry.DefaultPolicy.
	UploadRetry retry.Policy
	// SnapshotLowInterval is the average gap between low-resolution snapshot
	// frames on capture time, one of which may come a quarter of it early
	// (0: 200 ms, 5 fps, like the serial daemon; lowPacer).
	SnapshotLowInterval time.Duration
}

// New checks the config against the hub and returns the link. Every sensor
// must exist; H.264 video sensors are refused (Edge Impulse ingests stills,
// and an MP4 muxer is not part of this link).
func New(cfg Config, deps transport.Deps, opts Options) (*Link, error) {
	deps = deps.WithDefaults()
	op := fmt.Sprintf("edgeimpulse link %q", deps.Name)
	if deps.Hub == nil || deps.Spool == nil {
		return nil, fmt.Errorf("%s: hub and spool are required", op)
	}
	cfg.SetDefaults()
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("%s: no api key (Validate resolves api_key_file)", op)
	}
	l := &Link{cfg: cfg, opts: opts, deps: deps, log: deps.Logger, // the agent scopes it to the link
		enc: Encoding(cfg.Encoding), waiters: map[string]chan error{}, warns: newWarnGates(),
		key: &apiKey{file: cfg.APIKeyFile, cur: cfg.APIKey, secrets: deps.Secrets, slot: "edgeimpulse/" + deps.Name + "/api_key"}}
	deps.Secrets.Set(l.key.slot, cfg.APIKey)
	if l.enc != JSON && l.enc != CBOR {
		return nil, fmt.Errorf("%s: unknown encoding %q", op, cfg.Encoding)
	}
	if l.opts.SnapshotLowInterval <= 0 {
		l.opts.SnapshotLowInterval = defaultLowInterval
	}
	hellos := map[string]string{}
	for _, name := range cfg.Sensors {
		info, ok := deps.Hub.Info(name)
		if !ok {
			return nil, fmt.Errorf("%s: sensor %q: %w", op, name, sensors.ErrUnknownSensor)
		}
		h := name
		switch info.Class {
		case sensors.Still:
			h = fmt.Sprintf("Camera (%dx%d)", info.Width, info.Height)
			if l.camera == "" {
				l.camera = name
			}
		case sensors.Video:
			return nil, fmt.Errorf("%s: sensor %q is H.264 video; Edge Impulse sampling takes stills (offer a JPEG camera sensor)", op, name)
		}
		if other, dup := hellos[h]; dup {
			return nil, fmt.Errorf("%s: sensors %q and %q would both be offered as %q", op, other, name, h)
		}
		hellos[h] = name
		l.offered = append(l.offered, offered{hello: h, name: name})
	}
	// Earlier versions recorded into sample-*.tmp here, and a crash
	// mid-capture left a partial, unsigned file: not a recorded sample
	// (Studio saw it fail), so it goes. Captures now go straight into the
	// spool, which deletes its own unfinished files when it opens.
	if olds, _ := filepath.Glob(filepath.Join(deps.StateDir, "sample-*.tmp")); len(olds) > 0 {
		for _, f := range olds {
			_ = os.Remove(f)
		}
		l.log.Info("removed unfinished captures from a previous run", "files", len(olds))
	}
	var err error
	if l.ingest, err = url.Parse(cfg.IngestionURL); err != nil {
		return nil, fmt.Errorf("%s: ingestion_url: %w", op, err)
	}
	// One HTTP policy for every link (internal/httpx): ca_file adds to the
	// system roots, and ingestion never follows a redirect (the POST
	// carries x-api-key, which Go would forward to another host).
	tc, err := httpx.TLSConfig(httpx.TLS{CAFile: cfg.CAFile, InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	l.dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: handshakeTimeout,
		TLSClientConfig: tc, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}
	l.httpTr = httpx.NewTransport(tc.Clone())
	l.httpTr.IdleConnTimeout, l.httpTr.TLSHandshakeTimeout = 90*time.Second, handshakeTimeout
	l.httpTr.ResponseHeaderTimeout, l.httpTr.MaxIdleConnsPerHost = 2*time.Minute, 2
	l.http = httpx.NewClient(l.httpTr)
	l.waits = retry.NewPeerWaits(l.log)
	return l, nil
}

// hello builds the Hello from the sensors' current descriptions (a driver
// refines its rate once the device is open): version 3, or version 4 in
// inference mode while an on-device model runs (docs/protocols/eim.md §9).
func (l *Link) hello() helloMsg {
	h := hello{Version: 3, APIKey: l.key.get(), DeviceID: l.deps.Device.ID, DeviceType: l.deps.Device.Type,
		Connection: "ip", Sensors: make([]helloSensor, 0, len(l.offered)), SupportsSnapshotStreaming: l.camera != ""}
	if m := l.monitorOf(); m != nil {
		if info, ok := m.InferenceInfo(); ok {
			// No records are kept on the board: all indexes 0, as the
			// reference runner sends without storage.
			h.Version, h.Mode, h.InferenceInfo, h.AvailableRecords = 4, "inference", &info, &availableRecords{}
		}
	}
	if h.DeviceType == "" {
		h.DeviceType = "EDGE_IMPULSE_LINUX"
	}
	if h.DeviceID == "" {
		h.DeviceID = "00:00:00:00:00:00"
	}
	for _, o := range l.offered {
		info, _ := l.deps.Hub.Info(o.name)
		hs := helloSensor{Name: o.hello, Frequencies: []float64{}}
		switch info.Class {
		case sensors.Still:
			hs.MaxSampleLengthS = cameraMaxS
		default:
			hs.MaxSampleLengthS = maxLength(info).Seconds()
			hs.Frequencies = frequencies(info)
		}
		h.Sensors = append(h.Sensors, hs)
	}
	return helloMsg{Hello: h}
}

func maxLength(info sensors.Info) time.Duration {
	switch {
	case info.MaxSampleLength > 0:
		return info.MaxSampleLength
	case info.Class == sensors.Audio:
		return defaultAudioMax
	}
	return defaultMotionMax
}

func frequencies(info sensors.Info) []float64 {
	if len(info.Frequencies) > 0 {
		return append([]float64(nil), info.Frequencies...)
	}
	if info.Rate > 0 {
		return []float64{info.Rate}
	}
	return []float64{}
}

// ErrHelloRejected is wrapped when the server answers the Hello with
// hello:false, typically for a bad API key: permanently for an inline
// api_key, retried (the file re-read each time) for api_key_file.
var ErrHelloRejected = errors.New("hello rejected")

// Dial opens the WebSocket, sends the Hello in the configured encoding and
// waits for the server's verdict. api_key_file is re-read first (a rotated
// key needs no restart). hello:false is permanent for an inline key (retrying
// cannot fix it) and retried with backoff for a key file. A 429/503 with
// Retry-After on the upgrade is honoured.
func (l *Link) Dial(ctx context.Context) (transport.Session, error) {
	if changed, err := l.key.reload(); err != nil {
		l.logLimited(&l.warns.apiKey, "cannot re-read the API key; using the one read before", "err", err)
	} else if changed {
		l.log.Info("API key changed in api_key_file; using the new one")
	}
	conn, resp, err := l.dialer.DialContext(ctx, l.cfg.RemoteMgmtURL, nil)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			err = fmt.Errorf("edgeimpulse dial: %s: %w", resp.Status, err)
			if d, ok := l.waits.Header(resp.Header, l.deps.Clock.Now()); ok {
				return nil, retry.RetryAfter(err, d)
			}
			return nil, err
		}
		return nil, fmt.Errorf("edgeimpulse dial: %w", err)
	}
	conn.SetReadLimit(maxMessageBytes)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	s, err := l.handshake(conn)
	if !stop() || err != nil {
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	return s, nil
}

func (l *Link) handshake(conn *websocket.Conn) (*session, error) {
	s := newSession(l, conn)
	hm := l.hello()
	s.mon.announced.Store(hm.Hello.InferenceInfo != nil)
	b, err := EncodeMessage(l.enc, hm)
	if err != nil {
		return nil, err
	}
	// Socket deadlines are wall time: net.Conn takes time.Now, not the
	// injected clock.
	conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	if err := conn.WriteMessage(s.frameType, b); err != nil {
		return nil, fmt.Errorf("edgeimpulse hello: send: %w", err)
	}
	l.deps.Stats.MsgsOut.Add(1)
	l.deps.Stats.BytesOut.Add(int64(len(b)))
	conn.SetReadDeadline(time.Now().Add(handshakeTimeout)) // wall time: a socket deadline
	for {
		in, err := s.read()
		if err != nil {
			if errors.Is(err, ErrMalformed) {
				continue
			}
			return nil, fmt.Errorf("edgeimpulse hello: %w", err)
		}
		switch in.Type {
		case msgHello:
			if !in.HelloOK {
				reason := l.peer(in.Err)
				if reason == "" {
					reason = "no reason given"
				}
				l.deps.Stats.SetDetail("hello_error", reason)
				err := fmt.Errorf("edgeimpulse hello: %w: %s", ErrHelloRejected, reason)
				if l.key.file == "" {
					return nil, retry.Permanent(err)
				}
				return nil, fmt.Errorf("%w (waiting for a new key in %s)", err, l.key.file)
			}
			l.deps.Stats.SetDetail("hello_error", "")
			l.deps.Stats.SetDetail("encoding", string(l.enc))
			return s, nil
		case msgErr:
			return nil, fmt.Errorf("edgeimpulse hello: server error: %s", l.peer(in.Err))
		default:
			l.log.Debug("message before hello reply ignored", "type", in.Type, "keys", l.peerKeys(in.Keys))
		}
	}
}
