package infer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
	"github.com/edge-agent/edge-agent/internal/resample"
	"github.com/edge-agent/edge-agent/sensors"
)

// Feature extraction turns a sensor's samples into the raw feature vectors
// a model takes, as the Edge Impulse SDKs build them
// (docs/protocols/eim.md §6): motion rows interleaved axis by axis at the
// model's frequency, audio as 16-bit sample values at the model's rate
// (slices in continuous mode), images resized per image_resize_mode and
// packed one pixel per feature as 0xRRGGBB.

// window is one classification's input.
type window struct {
	features   []float32 // valid until the extractor's next add
	continuous bool      // classify_continuous: features are one slice
	input      []byte    // what was classified, for the results (JPEG, s16le PCM; nil for motion)
	at         time.Time // capture time of the newest data in it
	span       time.Duration
}

// extractor builds windows for one model from one sensor's samples.
// Not safe for concurrent use.
type extractor interface {
	// add takes one sample and calls emit for every window it completes.
	add(s sensors.Sample, emit func(window) error) error
}

// errMismatch says a model cannot take a sensor's data at all.
var errMismatch = errors.New("model does not fit the sensor")

// newExtractor picks the extraction for the model and checks that the
// sensor can feed it. interval is the stride of a sliding window (motion,
// audio outside continuous mode); 0 is a quarter of the window, the Python
// SDK's overlap and the Node SDK's 250 ms for a one-second window.
func newExtractor(m Model, info sensors.Info, interval time.Duration) (extractor, error) {
	p := m.Params
	want := func(c sensors.Class) error {
		if info.Class != c {
			return fmt.Errorf("%w: a %s model (sensor type %d) needs a %s sensor, and %q is %s",
				errMismatch, m.SensorName(), p.Sensor, c, info.Name, info.Class)
		}
		return nil
	}
	switch {
	case p.Sensor == SensorCamera || p.ImageInputWidth > 0:
		if err := want(sensors.Still); err != nil {
			return nil, err
		}
		return newImageExtractor(p)
	case p.Sensor == SensorMicrophone:
		if err := want(sensors.Audio); err != nil {
			return nil, err
		}
		return newAudioExtractor(p, info, interval)
	default:
		if err := want(sensors.Motion); err != nil {
			return nil, err
		}
		return newMotionExtractor(p, info, interval)
	}
}

// stride converts a sliding window's interval to samples at rate.
func stride(window int, rate float64, interval time.Duration) int {
	n := window / 4
	if interval > 0 {
		n = int(math.Round(interval.Seconds() * rate))
	}
	return max(1, min(n, window))
}

// ----- motion -----

// motionExtractor keeps a sliding window of rows at the model's frequency.
type motionExtractor struct {
	axes   int // the model's axis_count; the sensor's first axes are used
	rows   int // rows per window
	stride int
	rs     *rowResampler // nil when the sensor runs at the model's frequency
	freq   float64

	buf     []float32 // the newest rows, interleaved; up to 2 windows long
	since   int       // rows since the last window
	lastSeq uint64
	started bool
	scratch []float32
}

func newMotionExtractor(p Parameters, info sensors.Info, interval time.Duration) (*motionExtractor, error) {
	if p.AxisCount <= 0 || p.InputFeaturesCount%p.AxisCount != 0 {
		return nil, fmt.Errorf("%w: %d features do not split into %d axes", errMismatch, p.InputFeaturesCount, p.AxisCount)
	}
	if len(info.Axes) < p.AxisCount {
		return nil, fmt.Errorf("%w: the model reads %d axes and %q has %d", errMismatch, p.AxisCount, info.Name, len(info.Axes))
	}
	freq := p.Frequency
	if freq <= 0 && p.IntervalMS > 0 {
		freq = 1000 / p.IntervalMS
	}
	if freq <= 0 {
		return nil, fmt.Errorf("%w: the model states no frequency", errMismatch)
	}
	e := &motionExtractor{axes: p.AxisCount, rows: p.InputFeaturesCount / p.AxisCount, freq: freq}
	e.stride = stride(e.rows, freq, interval)
	if info.Rate > 0 && math.Abs(info.Rate-freq) > freq*0.005 {
		e.rs = &rowResampler{ratio: info.Rate / freq}
	}
	return e, nil
}

func (e *motionExtractor) add(s sensors.Sample, emit func(window) error) error {
	if len(s.Values) < e.axes {
		return fmt.Errorf("%w: motion row with %d values, the model reads %d axes", errInput, len(s.Values), e.axes)
	}
	if e.started && s.Seq != e.lastSeq+1 {
		// Rows were lost before the hub: the window would join two
		// stretches of time. Start it again.
		e.buf, e.since = e.buf[:0], 0
		if e.rs != nil {
			e.rs.reset()
		}
	}
	e.started, e.lastSeq = true, s.Seq
	row := s.Values[:e.axes]
	if e.rs == nil {
		return e.push(row, s.Time, emit)
	}
	var err error
	e.rs.add(row, func(out []float64) {
		if err == nil {
			err = e.push(out, s.Time, emit)
		}
	})
	return err
}

// push appends one row at the model's frequency and emits a window every
// stride rows once there is a whole one.
func (e *motionExtractor) push(row []float64, at time.Time, emit func(window) error) error {
	for _, v := range row {
		e.buf = append(e.buf, float32(v))
	}
	n := e.rows * e.axes
	if len(e.buf) > 2*n {
		e.buf = append(e.buf[:0], e.buf[len(e.buf)-n:]...)
	}
	e.since++
	if len(e.buf) < n || e.since < e.stride {
		return nil
	}
	e.since = 0
	return emit(window{features: e.buf[len(e.buf)-n:], at: at,
		span: time.Duration(float64(e.rows) / e.freq * float64(time.Second))})
}

// rowResampler converts rows from one rate to another by linear
// interpolation between neighbouring rows: input row k sits at k, output
// row j at j·ratio (ratio = input rate / output rate).
type rowResampler struct {
	ratio float64
	k     int       // index of the next input row
	j     int       // index of the next output row
	prev  []float64 // input row k-1
	out   []float64
}

func (r *rowResampler) reset() { r.k, r.j, r.prev = 0, 0, r.prev[:0] }

// add takes input row k and calls emit for every output row that falls in
// (k-1, k] (at k = 0: the row itself).
func (r *rowResampler) add(row []float64, emit func([]float64)) {
	if len(r.out) != len(row) {
		r.out = make([]float64, len(row))
	}
	k := r.k
	for {
		pos := float64(r.j) * r.ratio
		if pos > float64(k) {
			break
		}
		frac := pos - float64(k-1)
		for i, v := range row {
			if k == 0 || frac >= 1 {
				r.out[i] = v
			} else {
				r.out[i] = r.prev[i] + (v-r.prev[i])*frac
			}
		}
		emit(r.out)
		r.j++
	}
	r.prev = append(r.prev[:0], row...)
	r.k++
}

// ----- audio -----

// audioExtractor turns PCM blocks into the model's windows: in continuous
// mode one slice of slice_size samples at a time (the model keeps the
// window, docs/protocols/eim.md §5.1), else the whole window every stride.
type audioExtractor struct {
	window     int // input_features_count
	step       int // slice_size (continuous) or the stride
	continuous bool
	rate       float64
	channels   int
	inRate     int
	rs         *resample.Resampler

	buf     []int16 // the newest samples, up to two windows
	total   int     // samples since the start (capped at window: only "is it full" matters)
	pending int     // samples since the last step boundary
	lastSeq uint64
	started bool
	mono    []int16
	conv    []int16
	feat    []float32
}

func newAudioExtractor(p Parameters, info sensors.Info, interval time.Duration) (*audioExtractor, error) {
	if p.Frequency <= 0 || p.Frequency != math.Trunc(p.Frequency) {
		return nil, fmt.Errorf("%w: audio model frequency %v", errMismatch, p.Frequency)
	}
	e := &audioExtractor{window: p.InputFeaturesCount, rate: p.Frequency, channels: max(1, info.Channels)}
	if p.UseContinuousMode && p.SliceSize > 0 && p.SliceSize <= p.InputFeaturesCount {
		e.continuous, e.step = true, p.SliceSize
	} else {
		e.step = stride(e.window, p.Frequency, interval)
	}
	e.inRate = int(math.Round(info.Rate))
	if e.inRate <= 0 {
		return nil, fmt.Errorf("%w: %q states no sample rate", errMismatch, info.Name)
	}
	if e.inRate != int(p.Frequency) {
		rs, err := resample.New(e.inRate, int(p.Frequency), 1)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errMismatch, err)
		}
		e.rs = rs
	}
	return e, nil
}

func (e *audioExtractor) add(s sensors.Sample, emit func(window) error) error {
	if e.started && s.Seq != e.lastSeq+1 {
		// Audio was lost before the hub: a window across the gap would
		// splice two sounds. Start it again.
		e.buf, e.total, e.pending = e.buf[:0], 0, 0
		if e.rs != nil {
			e.rs, _ = resample.New(e.inRate, int(e.rate), 1)
		}
	}
	e.started, e.lastSeq = true, s.Seq
	// Down to mono (the models take one channel), then to the model's rate.
	frames := len(s.Data) / (2 * e.channels)
	e.mono = e.mono[:0]
	for f := range frames {
		sum := 0
		for c := range e.channels {
			sum += int(int16(binary.LittleEndian.Uint16(s.Data[2*(f*e.channels+c):])))
		}
		e.mono = append(e.mono, int16(sum/e.channels))
	}
	in := e.mono
	if e.rs != nil {
		e.conv = e.rs.Process(e.conv[:0], e.mono)
		in = e.conv
	}
	for len(in) > 0 {
		n := min(len(in), e.step-e.pending)
		e.buf = append(e.buf, in[:n]...)
		in = in[n:]
		e.pending += n
		e.total = min(e.total+n, e.window)
		if len(e.buf) > 2*e.window {
			e.buf = append(e.buf[:0], e.buf[len(e.buf)-e.window:]...)
		}
		if e.pending < e.step {
			continue
		}
		e.pending = 0
		if e.total < e.window {
			continue // the Node SDK starts once a whole window is buffered
		}
		if err := emit(e.windowAt(s)); err != nil {
			return err
		}
	}
	return nil
}

// windowAt builds the window ending at the newest sample: the features,
// and the whole window's PCM as what was classified.
func (e *audioExtractor) windowAt(s sensors.Sample) window {
	last := e.buf[len(e.buf)-e.window:]
	src := last
	if e.continuous {
		src = last[len(last)-e.step:]
	}
	e.feat = e.feat[:0]
	for _, v := range src {
		e.feat = append(e.feat, float32(v))
	}
	pcm := make([]byte, 2*len(last))
	for i, v := range last {
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(v))
	}
	return window{features: e.feat, continuous: e.continuous, input: pcm, at: s.Time.Add(s.Duration),
		span: time.Duration(float64(e.window) / e.rate * float64(time.Second))}
}

// ----- images -----

// Resize modes of image_resize_mode (docs/protocols/eim.md §6.3).
const (
	ResizeNone        = "none"
	ResizeFitShortest = "fit-shortest"
	ResizeFitLongest  = "fit-longest"
	ResizeSquash      = "squash"
)

// imageExtractor decodes each still, fits it to the model's input size and
// packs it.
type imageExtractor struct {
	w, h int
	gray bool
	mode string
	img  []byte // the fitted image, RGB or gray
	feat []float32
	rgb  []byte // the decoded frame as RGB, reused
}

func newImageExtractor(p Parameters) (*imageExtractor, error) {
	if p.ImageInputWidth <= 0 || p.ImageInputHeight <= 0 {
		return nil, fmt.Errorf("%w: image model without an input size", errMismatch)
	}
	if p.ImageInputFrames > 1 {
		return nil, fmt.Errorf("%w: models of %d frames per input are not supported (nor by the Node SDK)", errMismatch, p.ImageInputFrames)
	}
	if p.ImageInputWidth*p.ImageInputHeight != p.InputFeaturesCount {
		return nil, fmt.Errorf("%w: %d×%d pixels but %d features", errMismatch, p.ImageInputWidth, p.ImageInputHeight, p.InputFeaturesCount)
	}
	mode := p.ImageResizeMode
	switch mode {
	case ResizeNone, ResizeFitShortest, ResizeFitLongest, ResizeSquash:
	case "":
		mode = ResizeSquash // older models say nothing; the Python SDK squashes then
	default:
		return nil, fmt.Errorf("%w: unknown image_resize_mode %q", errMismatch, mode)
	}
	return &imageExtractor{w: p.ImageInputWidth, h: p.ImageInputHeight, gray: p.ImageChannelCount == 1, mode: mode}, nil
}

func (e *imageExtractor) add(s sensors.Sample, emit func(window) error) error {
	src, sw, sh, err := e.decode(s.Data)
	if err != nil {
		return fmt.Errorf("%w: decode still: %v", errInput, err)
	}
	e.feat = e.pack(src, sw, sh, e.feat[:0])
	return emit(window{features: e.feat, input: s.Data, at: s.Time})
}

// decode returns the still's pixels (e.channels() bytes each) and size. A
// frame at least twice the model's input is decoded at a reduced DCT
// scale, the smallest that leaves it twice the input (a 640×480 frame for
// a 96×96 model: 1/2, 320×240; for 48×48: 1/4), so the full-size image is
// never produced; fit then crops and resizes as for a whole decode. A
// frame that cannot be decoded that way (no libjpeg-turbo in this build, a
// CMYK JPEG, a frame cut short, resize mode none) is decoded whole.
func (e *imageExtractor) decode(data []byte) ([]byte, int, int, error) {
	if e.mode != ResizeNone {
		px, w, h, ok, err := camjpeg.DecodeReduced(e.rgb[:0], data, e.halves, e.gray)
		if err == nil && ok {
			e.rgb = px
			return px, w, h, nil
		}
		// An error here goes to image/jpeg, whose verdict (and message)
		// the whole decode has always given.
	}
	return e.decodeFull(data)
}

// halves reports whether fit, given a w×h frame, shrinks it at least by
// half. The reduced IDCT is not quite an area average: it drops the high
// frequencies (thin lines, hard edges) an average keeps a little of.
// Averaging two or more of its pixels per input pixel evens that out; a
// reduction to just the input's size was measured up to 3.7 levels off on
// such a frame (TestImageFeaturesReducedDecode). squash and fit-shortest
// fill the input from the frame (or its centre cut of the model's aspect
// ratio), so both sides count; fit-longest fits the frame inside, so one
// side suffices.
func (e *imageExtractor) halves(w, h int) bool {
	if e.mode == ResizeFitLongest {
		return w >= 2*e.w || h >= 2*e.h
	}
	return w >= 2*e.w && h >= 2*e.h
}

// decodeFull decodes the whole frame with image/jpeg.
func (e *imageExtractor) decodeFull(data []byte) ([]byte, int, int, error) {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, err
	}
	src, sw, sh := e.pixels(img, e.channels())
	return src, sw, sh, nil
}

func (e *imageExtractor) channels() int {
	if e.gray {
		return 1
	}
	return 3
}

// pack fits the sw×sh pixels src to the model and appends them packed to
// dst.
func (e *imageExtractor) pack(src []byte, sw, sh int, dst []float32) []float32 {
	ch := e.channels()
	e.img = fit(e.img[:0], src, sw, sh, ch, e.w, e.h, e.mode)
	if ch == 1 {
		for _, p := range e.img {
			v := uint32(p)
			dst = append(dst, float32(v<<16|v<<8|v))
		}
		return dst
	}
	for i := 0; i+2 < len(e.img); i += 3 {
		dst = append(dst, float32(uint32(e.img[i])<<16|uint32(e.img[i+1])<<8|uint32(e.img[i+2])))
	}
	return dst
}

// pixels returns img as ch-channel bytes (RGB, or gray). A JPEG's luma is
// its gray image as is (the Rec. 601 weighting of the C++ SDK's grayscale
// conversion); colour goes through the standard YCbCr conversion.
func (e *imageExtractor) pixels(img image.Image, ch int) ([]byte, int, int) {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	need := sw * sh * ch
	if cap(e.rgb) < need {
		e.rgb = make([]byte, need)
	}
	out := e.rgb[:need]
	switch im := img.(type) {
	case *image.YCbCr:
		if ch == 1 {
			for y := 0; y < sh; y++ {
				yo := im.YOffset(b.Min.X, b.Min.Y+y)
				copy(out[y*sw:(y+1)*sw], im.Y[yo:yo+sw])
			}
			return out, sw, sh
		}
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			yo := im.YOffset(b.Min.X, y)
			for x := b.Min.X; x < b.Max.X; x++ {
				co := im.COffset(x, y)
				r, g, bl := color.YCbCrToRGB(im.Y[yo+x-b.Min.X], im.Cb[co], im.Cr[co])
				out[i], out[i+1], out[i+2] = r, g, bl
				i += 3
			}
		}
		return out, sw, sh
	case *image.Gray:
		i := 0
		for y := 0; y < sh; y++ {
			for x := 0; x < sw; x++ {
				p := im.Pix[y*im.Stride+x]
				for c := 0; c < ch; c++ {
					out[i+c] = p
				}
				i += ch
			}
		}
		return out, sw, sh
	}
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			if ch == 1 {
				out[i] = color.GrayModel.Convert(c).(color.Gray).Y
			} else {
				r, g, bl, _ := c.RGBA()
				out[i], out[i+1], out[i+2] = byte(r>>8), byte(g>>8), byte(bl>>8)
			}
			i += ch
		}
	}
	return out, sw, sh
}

// fit fits the sw×sh image src (ch channels) into dw×dh per mode, as the
// Python SDK's get_features_from_image_with_studio_mode does, and appends
// the result to dst:
//
//   - squash: the whole frame scaled to dw×dh, aspect ratio lost;
//   - fit-shortest: the centre cut to the model's aspect ratio, then scaled
//     (the shorter side fills the input);
//   - fit-longest: scaled to fit inside, centred, the rest black
//     (letterbox);
//   - none: no scaling; the centre dw×dh cut out, black where the frame is
//     smaller.
//
// Scaling averages the source area under each output pixel (OpenCV's
// INTER_AREA, which the Python SDK uses), so a frame of one colour stays
// exactly that colour.
func fit(dst, src []byte, sw, sh, ch, dw, dh int, mode string) []byte {
	n := dw * dh * ch
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	switch mode {
	case ResizeSquash:
		scale(dst, dw, 0, 0, dw, dh, src, sw, 0, 0, sw, sh, ch)
	case ResizeFitShortest:
		cx, cy, cw, chh := 0, 0, sw, sh
		if float64(sw)/float64(sh) > float64(dw)/float64(dh) {
			cw = int(float64(sh) * float64(dw) / float64(dh))
			cx = (sw - cw) / 2
		} else {
			chh = int(float64(sw) * float64(dh) / float64(dw))
			cy = (sh - chh) / 2
		}
		scale(dst, dw, 0, 0, dw, dh, src, sw, cx, cy, cw, chh, ch)
	case ResizeFitLongest:
		clear(dst)
		s := min(float64(dw)/float64(sw), float64(dh)/float64(sh))
		nw, nh := max(1, int(float64(sw)*s)), max(1, int(float64(sh)*s))
		scale(dst, dw, (dw-nw)/2, (dh-nh)/2, nw, nh, src, sw, 0, 0, sw, sh, ch)
	default: // none
		clear(dst)
		// The overlap of the centred dw×dh box with the frame.
		ox, oy := (sw-dw)/2, (sh-dh)/2 // may be negative: the frame is smaller
		for y := 0; y < dh; y++ {
			sy := y + oy
			if sy < 0 || sy >= sh {
				continue
			}
			for x := 0; x < dw; x++ {
				sx := x + ox
				if sx < 0 || sx >= sw {
					continue
				}
				copy(dst[(y*dw+x)*ch:(y*dw+x+1)*ch], src[(sy*sw+sx)*ch:(sy*sw+sx+1)*ch])
			}
		}
	}
	return dst
}

// scale writes the source rectangle (sx, sy, sw2×sh2) of src (row length
// srcW pixels) into the rectangle (dx, dy, w×h) of dst (row length dstW),
// averaging the source area each output pixel covers, separably: rows
// first into a float buffer, then columns.
func scale(dst []byte, dstW, dx, dy, w, h int, src []byte, srcW, sx, sy, sw2, sh2, ch int) {
	if w == sw2 && h == sh2 {
		for y := 0; y < h; y++ {
			copy(dst[((dy+y)*dstW+dx)*ch:((dy+y)*dstW+dx+w)*ch], src[((sy+y)*srcW+sx)*ch:((sy+y)*srcW+sx+w)*ch])
		}
		return
	}
	wy := weightsFor(sh2, h)
	wx := weightsFor(sw2, w)
	row := make([]float32, sw2*ch)
	for y := 0; y < h; y++ {
		clear(row)
		for _, t := range wy[y] {
			base := ((sy+t.i)*srcW + sx) * ch
			for k := 0; k < sw2*ch; k++ {
				row[k] += float32(src[base+k]) * t.w
			}
		}
		out := dst[((dy+y)*dstW+dx)*ch:]
		for x := 0; x < w; x++ {
			for c := 0; c < ch; c++ {
				var v float32
				for _, t := range wx[x] {
					v += row[t.i*ch+c] * t.w
				}
				out[x*ch+c] = byte(min(255, max(0, v+0.5)))
			}
		}
	}
}

type tap struct {
	i int
	w float32
}

// weights keeps the tables areaWeights built: a stream resizes the same
// sizes frame after frame. Tables are read-only once built; the cache is
// cleared when it holds maxWeightTables (a stream sees a few sizes).
var weights = struct {
	sync.Mutex
	m map[[2]int][][]tap
}{m: map[[2]int][][]tap{}}

const maxWeightTables = 32

// weightsFor is areaWeights(n, m), built once per size pair. Safe for
// concurrent use.
func weightsFor(n, m int) [][]tap {
	key := [2]int{n, m}
	weights.Lock()
	defer weights.Unlock()
	if t, ok := weights.m[key]; ok {
		return t
	}
	if len(weights.m) >= maxWeightTables {
		clear(weights.m)
	}
	t := areaWeights(n, m)
	weights.m[key] = t
	return t
}

// areaWeights maps n source pixels onto m output pixels: output pixel j
// covers [j·n/m, (j+1)·n/m) of the source, and each source pixel it
// touches counts by the overlap, normalised so the weights sum to one.
func areaWeights(n, m int) [][]tap {
	out := make([][]tap, m)
	r := float64(n) / float64(m)
	for j := range out {
		a, b := float64(j)*r, float64(j+1)*r
		var sum float64
		for i := int(a); i < n && float64(i) < b; i++ {
			lo, hi := max(a, float64(i)), min(b, float64(i+1))
			if hi > lo {
				out[j] = append(out[j], tap{i: i, w: float32(hi - lo)})
				sum += hi - lo
			}
		}
		for k := range out[j] {
			out[j][k].w = float32(float64(out[j][k].w) / sum)
		}
	}
	return out
}
