// Package sensors defines what every sensor driver produces and what every
// link consumes: a Source that runs while it has readers, a Sample of one of
// five classes, and the Hub through which links subscribe. Drivers live in
// sub-packages (synthetic, iio, serial, audio, v4l2, command); the hub that
// fans a source out to many subscribers lives in agent/hub.
//
// A driver may import only the standard library, its device library and
// internal/…; never transport or upload.
package sensors

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Class is what kind of data a sensor produces.
type Class int

const (
	// Motion rows: Values holds one reading per axis at Time.
	Motion Class = iota + 1
	// Audio blocks: Data holds signed 16-bit little-endian PCM, Channels
	// interleaved, at Info.Rate samples per second.
	Audio
	// Still frames: Data holds one complete JPEG image.
	Still
	// Video access units: Data holds one H.264 access unit in Annex-B form
	// (start codes included); keyframes carry SPS and PPS in front.
	Video
	// Inference results of an on-device model (agent/infer): Values holds
	// one score per label in Info.Axes order, Data the model's answer as
	// JSON ({"result": …, "timing": …}, docs/protocols/eim.md §5.2) and
	// Input what was classified.
	Inference
)

func (c Class) String() string {
	switch c {
	case Motion:
		return "motion"
	case Audio:
		return "audio"
	case Still:
		return "still"
	case Video:
		return "video"
	case Inference:
		return "inference"
	}
	return "unknown"
}

// Sample is one unit of sensor output. Receivers must treat Data and Values as
// read-only: the hub hands the same Sample to every subscriber.
type Sample struct {
	Class Class
	// Time is the capture time. Drivers take it from a monotonic source
	// (time.Now() carries one) or the kernel's timestamp.
	Time time.Time
	// Seq counts samples from the source's start; a gap means the driver lost
	// data before it reached the hub.
	Seq uint64
	// Values is one motion row, in Info.Axes order and Info.Units.
	Values []float64
	// Data is PCM (Audio), a JPEG (Still) or an Annex-B access unit (Video).
	Data []byte
	// Keyframe marks a Video access unit that starts with SPS+PPS+IDR.
	Keyframe bool
	// Duration is the span a Video or Audio sample covers (1/fps, frames/rate),
	// or the window an Inference result classified.
	Duration time.Duration
	// Input is, for an Inference result, the data the model classified: a
	// JPEG still or s16le PCM at the model's rate (nil for motion).
	Input []byte
}

// Info describes a configured sensor. Drivers fill it from config and refine
// it once the device is open (a driver that rounds the sampling frequency
// reports the real one).
type Info struct {
	Name  string // the instance name from the config
	Kind  string // iio | serial | microphone | v4l2 | command | synthetic | eim (an inference stream)
	Class Class
	// Rate is samples per second for Motion, frames per second for Audio
	// (16000) and the frame rate for Still and Video.
	Rate float64
	// Frequencies are the motion rates a link may request (Edge Impulse
	// offers them in its Hello). Empty for cameras.
	Frequencies []float64
	// Axes names the motion columns, e.g. accX, accY, accZ; Units is e.g. m/s2.
	Axes  []string
	Units string
	// Channels for Audio (1 for mono).
	Channels int
	// NativeRate is the rate an Audio device really captures at, once it is
	// open (0 before); the driver converts it to Rate.
	NativeRate float64
	// Width and Height of Still and Video frames.
	Width, Height int
	// MaxSampleLength bounds one recorded sample (Edge Impulse maxSampleLengthS).
	MaxSampleLength time.Duration
}

// Source is one sensor. Run opens the device, sends samples until ctx ends and
// closes the device before it returns; it returns nil when ctx ended and an
// error when the device failed or vanished (the hub restarts it with backoff
// while it still has subscribers). Run must not block on out forever: it
// should select on ctx.Done() as well. Info may be called at any time,
// concurrently with Run.
type Source interface {
	Info() Info
	Run(ctx context.Context, out chan<- Sample) error
}

// KeyframeRequester is implemented by video sources that can be asked for an
// IDR frame (V4L2 H.264 force-key-frame, an encoder that takes a signal).
// Sources that cannot do it rely on their keyframe interval.
type KeyframeRequester interface {
	RequestKeyframe() error
}

// DropPolicy says what a subscription does when its queue is full.
type DropPolicy int

const (
	// DropOldest (newest wins) discards the oldest queued sample to make room.
	// Right for live frames and streams: a late frame is worth less than the
	// current one.
	DropOldest DropPolicy = iota
	// NoDrop is for a requested sample window. The queue must be sized to the
	// whole window (rate × length plus slack); if the reader still falls that
	// far behind, the subscription is marked overrun (Overrun reports it) and
	// the newest samples are counted as dropped, so the recording fails
	// loudly instead of arriving short without anyone knowing.
	NoDrop
)

// SubscribeOptions configures one subscription.
type SubscribeOptions struct {
	// Queue is the channel capacity; 0 means 16.
	Queue  int
	Policy DropPolicy
	// Label names the subscriber in logs and metrics (usually the link name).
	Label string
}

// Subscription is a live feed from one sensor. C is closed when the
// subscription is closed or the hub shuts down.
type Subscription interface {
	C() <-chan Sample
	// Info is the sensor's current description.
	Info() Info
	// Dropped counts samples this subscriber lost to a full queue.
	Dropped() uint64
	// Overrun reports whether a NoDrop subscription lost samples.
	Overrun() bool
	// RequestKeyframe asks a video source for an IDR frame; it returns
	// ErrNoKeyframeControl when the source cannot.
	RequestKeyframe() error
	// Close ends the subscription. The last Close on a sensor stops its
	// source and releases the device. Close is idempotent.
	Close()
}

// Hub gives links access to the configured sensors.
type Hub interface {
	// Sensors lists every configured sensor.
	Sensors() []Info
	// Info returns one sensor's description.
	Info(name string) (Info, bool)
	// Subscribe starts a feed; the first subscriber starts the source.
	Subscribe(name string, opts SubscribeOptions) (Subscription, error)
}

var (
	// ErrUnknownSensor is returned by Subscribe for a name not in the config.
	ErrUnknownSensor = errors.New("unknown sensor")
	// ErrNoKeyframeControl says a video source cannot produce a keyframe on request.
	ErrNoKeyframeControl = errors.New("source cannot force a keyframe")
	// ErrHubClosed is returned by Subscribe after the hub has shut down.
	ErrHubClosed = errors.New("sensor hub closed")
)

// Env is what the agent hands every driver constructor. Device roots are
// parameters so that drivers run against fake trees in tests.
type Env struct {
	Logger   *slog.Logger
	SysRoot  string // "/sys" in production
	DevRoot  string // "/dev"
	ProcRoot string // "/proc"
	// DataDir is where drivers find bundled media (the synthetic h264 loop);
	// empty means next to the binary or the repository's shared testdata.
	DataDir string
}
