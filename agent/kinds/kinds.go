// Package kinds is the one table of sensor and link kinds. A row gives the
// kind's name (the `kind:` value and the key of its config block), a fresh
// block with its defaults, its constructor, for a link the in-process fake
// `edge-agent sim` and `demo` start, and the line docs/CONFIG.md shows.
//
// The config loader (keys, defaults, decoding, the "block does not match
// kind" check), the agent's constructors, the sim, scripts/configdoc and the
// e2e suite all read these two slices; no other file lists kinds. The table
// is an explicit slice, not init() registration, so what the binary can run
// is readable in one place and its order is the order of the docs and the
// demo. docs/DESIGN.md ("Adding a link", "Adding a sensor kind") lists what a
// new kind takes besides its row.
//
// It is a package of its own because agent/config needs it and package agent
// imports agent/config. The tables are never modified after package
// initialisation, so any goroutine may read them.
package kinds

import (
	"fmt"
	"log/slog"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/audio"
	"github.com/edge-agent/edge-agent/sensors/command"
	"github.com/edge-agent/edge-agent/sensors/iio"
	"github.com/edge-agent/edge-agent/sensors/serial"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
	"github.com/edge-agent/edge-agent/sensors/v4l2"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/camserver"
	"github.com/edge-agent/edge-agent/transport/camserver/camservertest"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse"
	"github.com/edge-agent/edge-agent/transport/edgeimpulse/eitest"
	"github.com/edge-agent/edge-agent/transport/frameio"
	"github.com/edge-agent/edge-agent/transport/frameio/frameiotest"
	"github.com/edge-agent/edge-agent/transport/rtm"
	"github.com/edge-agent/edge-agent/transport/rtm/rtmtest"
)

// Sensors are the sensor kinds, in the order of the docs.
var Sensors = []Sensor{
	sensor("iio", "Accelerometers through the Linux IIO subsystem: sysfs polling, or buffered capture from /dev/iio:deviceN at higher rates.", iio.New),
	sensor("serial", "Arduino-style boards printing one reading per line on a serial port; axes and frequency detected from the data.", serial.New),
	sensor("microphone", "A microphone through ALSA (needs the cgo build): s16le mono PCM.", audio.New),
	sensor("v4l2", "A V4L2 camera: MJPEG or YUYV stills, or H.264 access units.", v4l2.New),
	sensor("command", "An external encoder (rpicam-vid, ffmpeg, arecord) whose stdout is the sensor: H.264, MJPEG or PCM.", command.New),
	sensor("synthetic", "Signals that need no hardware (motion, a tone, a test pattern, an H.264 loop), for the demo and the tests.", synthetic.New),
}

// Links are the link kinds, in the order of the docs and the demo.
var Links = []Link{
	link("edgeimpulse", "Edge Impulse remote management: Studio's sample requests and snapshots over a WebSocket, uploads to the ingestion service through the spool.", edgeimpulse.New, eitest.NewSim),
	link("rtm", "Stream recording over WebRTC: the camera (H.264) and microphone published to an RTM server, recordings started, stopped and uploaded.", rtm.New, rtmtest.NewSim),
	link("frameio", "Frame.io Camera-to-Cloud: device pairing (`edge-agent pair`), the device socket and durable asset uploads.", frameio.New, frameiotest.NewSim),
	link("camserver", "The REST Web Camera Server: an HTTP/2 JSON API and a raw frame stream pushed with PUT.", camserver.New, camservertest.NewSim),
}

// Block is what every kind's config block implements; a block is a pointer
// to its package's Config (*iio.Config, *rtm.Config).
type Block interface {
	// SetDefaults fills zero fields. The loader calls it before decoding
	// over the block, so an explicit value wins.
	SetDefaults()
	// Validate records every problem by field path relative to the block.
	Validate(v *conf.Validator)
}

// Kind is what sensor and link rows share.
type Kind struct {
	// Name is the `kind:` value and the key of the kind's block.
	Name string
	// Doc is the kind's one-line description in docs/CONFIG.md.
	Doc string
	// NewBlock returns a fresh block with its defaults.
	NewBlock func() Block
}

func (k Kind) kind() Kind { return k }

// Sensor is one sensor kind.
type Sensor struct {
	Kind
	// New builds the source named name from a block of this kind (one
	// NewBlock made, as the loader fills it).
	New func(name string, b Block, env sensors.Env) (sensors.Source, error)
}

// Link is one link kind.
type Link struct {
	Kind
	// New builds the link from a block of this kind, with the zero Options
	// of the link's package (production behaviour).
	New func(b Block, deps transport.Deps) (transport.Link, error)
	// NewSim starts the kind's in-process fake on listen (host:port, port 0
	// for an ephemeral one); the caller closes it.
	NewSim func(listen string, logger *slog.Logger) (transport.SimService, error)
}

// Row is a sensor or a link row.
type Row interface{ kind() Kind }

// Find returns the row of rows named name.
func Find[R Row](rows []R, name string) (R, bool) {
	for _, r := range rows {
		if r.kind().Name == name {
			return r, true
		}
	}
	var zero R
	return zero, false
}

// Kinds returns what each row shares, in table order: the loader and the
// docs treat sensor and link blocks alike.
func Kinds[R Row](rows []R) []Kind {
	out := make([]Kind, len(rows))
	for i, r := range rows {
		out[i] = r.kind()
	}
	return out
}

// Names returns the kind names of rows, in table order.
func Names[R Row](rows []R) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.kind().Name
	}
	return out
}

// blockPtr is a kind's block type, *C for the package's Config C.
type blockPtr[C any] interface {
	*C
	Block
}

// kind is the shared part of the row of the kind whose block is *C.
func kind[C any, P blockPtr[C]](name, doc string) Kind {
	return Kind{Name: name, Doc: doc, NewBlock: func() Block {
		p := P(new(C))
		p.SetDefaults()
		return p
	}}
}

// config returns the Config b points to, or an error naming the kind when b
// is another kind's block (or nil).
func config[C any, P blockPtr[C]](kind string, b Block) (C, error) {
	p, ok := b.(P)
	if !ok || p == nil {
		var zero C
		return zero, fmt.Errorf("kind %s: config block is %T, want %T", kind, b, p)
	}
	return *p, nil
}

// sensor makes the row of a sensor kind from its package's constructor.
func sensor[C any, P blockPtr[C]](name, doc string, newSource func(string, C, sensors.Env) (sensors.Source, error)) Sensor {
	return Sensor{Kind: kind[C, P](name, doc), New: func(inst string, b Block, env sensors.Env) (sensors.Source, error) {
		c, err := config[C, P](name, b)
		if err != nil {
			return nil, err
		}
		return newSource(inst, c, env)
	}}
}

// link makes the row of a link kind from its package's constructor, called
// with the zero Options O, and its fake's NewSim.
func link[C any, P blockPtr[C], O any, L transport.Link](name, doc string,
	newLink func(C, transport.Deps, O) (L, error),
	newSim func(string, *slog.Logger) (transport.SimService, error),
) Link {
	return Link{Kind: kind[C, P](name, doc), NewSim: newSim, New: func(b Block, deps transport.Deps) (transport.Link, error) {
		c, err := config[C, P](name, b)
		if err != nil {
			return nil, err
		}
		var opts O
		l, err := newLink(c, deps, opts)
		if err != nil {
			return nil, err // not l: a nil *Link in a non-nil interface
		}
		return l, nil
	}}
}
