package edgeimpulse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Encoding is the wire encoding of a remote-management session. The Hello's
// encoding fixes it for the whole session (docs/protocols/edge-impulse.md
// §2.1): JSON travels in text frames, CBOR in binary frames.
type Encoding string

// Encodings.
const (
	JSON Encoding = "json"
	CBOR Encoding = "cbor"
)

// Inbound message types (the first-level key of a server message,
// docs/protocols/edge-impulse.md §4).
const (
	msgHello         = "hello"
	msgErr           = "err"
	msgSample        = "sample"
	msgStartSnapshot = "startSnapshot"
	msgStopSnapshot  = "stopSnapshot"
	// Model monitoring (docs/protocols/eim.md §9).
	msgStartInference = "startInferenceStream"
	msgStopInference  = "stopInferenceStream"
	msgNewModel       = "newModelAvailable"
	msgRecordAck      = "impulseRecordAck"
	msgRecordRequest  = "impulseRecordRequest"
)

// maxMessageBytes bounds one inbound frame. Server messages are small; a
// bigger frame is a peer bug and is refused by the socket's read limit.
const maxMessageBytes = 1 << 20

// ErrMalformed marks an inbound message that could not be decoded or whose
// fields have the wrong types. The session logs it; a sample or startSnapshot
// request among them (Inbound.Invalid says why) is also answered with a
// refusal, so that Studio does not wait for a reply that never comes.
var ErrMalformed = errors.New("malformed message")

// cborMsgDec decodes server messages into the typed wire structs below, with
// tight limits because the input is a peer's. Keys match case-sensitively, as
// in the protocol.
var cborMsgDec = mustDecMode(cbor.DecOptions{
	MaxNestedLevels:   16,
	MaxArrayElements:  4096,
	MaxMapPairs:       256,
	DupMapKey:         cbor.DupMapKeyEnforcedAPF,
	IndefLength:       cbor.IndefLengthAllowed,
	FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
})

// cborEnc encodes outbound messages. Struct fields are written in
// declaration order (the reference clients' key order) and floats keep their
// float64 width, as the C++ firmware does for frequencies.
var cborEnc = mustEncMode(cbor.EncOptions{})

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	dm, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	em, err := o.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}

// Inbound is a decoded server message.
type Inbound struct {
	// Type is the known first-level key that names the message, or "" when
	// the message carries none of them (unknown: logged at debug, ignored).
	Type string
	// Keys are, for an unknown message only, some of its first-level keys
	// (at most maxKeys), sorted, for the log. A key longer than maxKeyLen is
	// named by its length only: the decoder knows no secret to mask, and a
	// key cut here could end in the start of an echoed API key, which no
	// mask matches any more.
	Keys []string

	// HelloOK is the value of a hello reply; Err is its (or a generic) error.
	HelloOK bool
	Err     string
	// Sample is the sample request.
	Sample SampleRequest
	// Resolution is startSnapshot's resolution as sent: "low" (also when
	// absent, null or empty), "high" or anything else (the session streams
	// low then).
	Resolution string
	// Ack is an impulseRecordAck's verdict (Err its reason).
	Ack bool
	// Invalid says, for a sample or startSnapshot request whose fields have
	// the wrong type, what is wrong ("length is a string, not a number");
	// DecodeMessage then returns the request's Type with it and an error
	// wrapping ErrMalformed.
	Invalid string
}

// Bounds of Inbound.Keys: a peer's frame may hold 100 000 keys.
const (
	maxKeys   = 8
	maxKeyLen = 64
)

// SampleRequest is Studio's `sample` message (docs/protocols/edge-impulse.md
// §4.4). Length and Interval are milliseconds; Interval may be fractional
// (0.0625 for 16 kHz).
type SampleRequest struct {
	Label    string  `json:"label"`
	Length   float64 `json:"length"`
	Path     string  `json:"path"`
	HMACKey  string  `json:"hmacKey"`
	Interval float64 `json:"interval"`
	Sensor   string  `json:"sensor"`
}

// rawValue is one field's encoded value, kept undecoded until the message's
// type says whether (and as what) the field is read. Both decoders hand it a
// slice of the frame and it copies only that, so a frame full of other keys
// or deep arrays costs nothing beyond the frame itself: the old decoding into
// map[string]any held 20 MiB (JSON) / 63 MiB (CBOR) for a 1 MiB frame.
type rawValue []byte

// UnmarshalJSON keeps the value's bytes.
func (r *rawValue) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// UnmarshalCBOR keeps the value's bytes.
func (r *rawValue) UnmarshalCBOR(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// wireMsg is the first level of a server message: only the keys the link
// acts on (the json tags serve both encodings). Every other key is skipped
// by the decoder without being materialised.
type wireMsg struct {
	Hello         rawValue `json:"hello"`
	Err           rawValue `json:"err"`
	Sample        rawValue `json:"sample"`
	StartSnapshot rawValue `json:"startSnapshot"`
	StopSnapshot  rawValue `json:"stopSnapshot"`
	Resolution    rawValue `json:"resolution"`

	StartInference rawValue `json:"startInferenceStream"`
	StopInference  rawValue `json:"stopInferenceStream"`
	NewModel       rawValue `json:"newModelAvailable"`
	RecordAck      rawValue `json:"impulseRecordAck"`
	RecordRequest  rawValue `json:"impulseRecordRequest"`
	Error          rawValue `json:"error"`
}

// wireSample is a sample request's object, fields kept raw for type checks.
type wireSample struct {
	Label    rawValue `json:"label"`
	Length   rawValue `json:"length"`
	Path     rawValue `json:"path"`
	HMACKey  rawValue `json:"hmacKey"`
	Interval rawValue `json:"interval"`
	Sensor   rawValue `json:"sensor"`
}

// DecodeMessage decodes one server message in enc. Unknown top-level and nested
// fields are ignored (docs/protocols/edge-impulse.md §4.4: be lenient); a
// message that is not an object, or whose known fields have the wrong type,
// returns an error wrapping ErrMalformed. For a sample or startSnapshot
// request with wrong-typed fields the Inbound still has its Type and says in
// Invalid what is wrong, so that the request can be answered. Only the known
// fields are decoded (into typed values), so the memory a frame costs stays
// within a small multiple of its size whatever it holds. JSON keys match as
// encoding/json matches them (exact, else case-insensitively); CBOR keys
// match exactly. A JSON frame of at most maxLenientJSON bytes may hold the
// bare NaN, Infinity and -Infinity some encoders write for non-finite
// numbers: the field holding one is reported as such
// (docs/protocols/edge-impulse.md §4.4).
func DecodeMessage(enc Encoding, b []byte) (Inbound, error) {
	var w wireMsg
	err := unmarshal(enc, b, &w)
	marked := false
	if err != nil && enc == JSON && len(b) <= maxLenientJSON {
		if nb, ok := markNonFinite(b); ok {
			var mw wireMsg
			if unmarshal(enc, nb, &mw) == nil {
				b, w, err, marked = nb, mw, nil, true
			}
		}
	}
	if err != nil {
		return Inbound{}, fmt.Errorf("decode %s message: %w: %v", enc, ErrMalformed, err)
	}
	if !isObject(enc, b) {
		return Inbound{}, fmt.Errorf("decode %s message: %w: not an object", enc, ErrMalformed)
	}
	// A message is typed by the first known key it carries, in this order.
	var in Inbound
	switch {
	case w.Hello != nil:
		in.Type = msgHello
	case w.Sample != nil:
		in.Type = msgSample
	case w.StartSnapshot != nil:
		in.Type = msgStartSnapshot
	case w.StopSnapshot != nil:
		in.Type = msgStopSnapshot
	case w.StartInference != nil:
		in.Type = msgStartInference
	case w.StopInference != nil:
		in.Type = msgStopInference
	case w.NewModel != nil:
		in.Type = msgNewModel
	case w.RecordAck != nil:
		in.Type = msgRecordAck
	case w.RecordRequest != nil:
		in.Type = msgRecordRequest
	case w.Err != nil:
		in.Type = msgErr
	default:
		in.Keys = topKeys(enc, b)
		return in, nil
	}
	f := fields{enc: enc, marked: marked}
	switch in.Type {
	case msgHello:
		in.HelloOK = f.boolean("hello", w.Hello)
		if w.Err != nil {
			in.Err = f.str("err", w.Err)
		}
	case msgErr:
		in.Err = f.str("err", w.Err)
	case msgRecordAck:
		in.Ack = f.boolean("impulseRecordAck", w.RecordAck)
		if w.Error != nil && !isNull(enc, w.Error) {
			in.Err = f.str("error", w.Error)
		}
	case msgSample:
		var ws wireSample
		if kind := f.kind(w.Sample); kind != "an object" || unmarshal(enc, w.Sample, &ws) != nil {
			f.wrong("sample", kind, "an object")
			break
		}
		// In the real service's order (docs/protocols/edge-impulse.md
		// §4.4), so that the reasons are too.
		var r SampleRequest
		r.Path = f.optStr("path", ws.Path)
		r.Label = f.optStr("label", ws.Label)
		r.Length = f.optNum("length", ws.Length)
		r.Interval = f.optNum("interval", ws.Interval)
		r.HMACKey = f.optStr("hmacKey", ws.HMACKey)
		r.Sensor = f.optStr("sensor", ws.Sensor)
		in.Sample = r
	case msgStartSnapshot:
		in.Resolution = "low"
		// Absent, null or empty all mean low, as for the Linux client,
		// which only tests the field for truth
		// (docs/protocols/edge-impulse.md §4.7).
		if w.Resolution != nil && !isNull(enc, w.Resolution) {
			if s := f.str("resolution", w.Resolution); s != "" {
				in.Resolution = s
			}
		}
	}
	if marked && len(f.bad) == 0 {
		// The non-finite number is in a field the link does not read: the
		// frame is still not JSON.
		f.bad = append(f.bad, "a field holds NaN or an infinity, which JSON does not allow")
	}
	if len(f.bad) > 0 {
		why := strings.Join(f.bad, "; ")
		err := fmt.Errorf("decode %s message %q: %w: %s", enc, in.Type, ErrMalformed, why)
		if in.Type != msgSample && in.Type != msgStartSnapshot {
			return Inbound{}, err
		}
		return Inbound{Type: in.Type, Invalid: why}, err
	}
	return in, nil
}

// fields decodes the typed fields of one message, collecting what is wrong
// with them.
type fields struct {
	enc Encoding
	// marked: markNonFinite rewrote the frame, so a string starting with
	// nonFiniteMark stands for a bare NaN or infinity.
	marked bool
	bad    []string
}

func (f *fields) wrong(name, kind, want string) {
	f.bad = append(f.bad, name+" is "+kind+", not "+want)
}

func (f *fields) boolean(name string, v rawValue) bool {
	b, ok := decodeBool(f.enc, v)
	if !ok {
		f.wrong(name, f.kind(v), "a bool")
	}
	return b
}

func (f *fields) str(name string, v rawValue) string {
	s, ok := decodeString(f.enc, v)
	if !ok || f.marked && strings.HasPrefix(s, nonFiniteMark) {
		f.wrong(name, f.kind(v), "a string")
		return ""
	}
	return s
}

func (f *fields) optStr(name string, v rawValue) string {
	if v == nil {
		return ""
	}
	return f.str(name, v)
}

// optNum reads a finite number. A number too large for a float64 (JSON
// 1e400, a CBOR bignum) is out of range; NaN and the infinities are named.
func (f *fields) optNum(name string, v rawValue) float64 {
	if v == nil {
		return 0
	}
	n, ok := decodeNumber(f.enc, v)
	if ok {
		return n
	}
	switch kind := f.kind(v); kind {
	case "NaN", "Infinity", "-Infinity":
		f.wrong(name, kind, "a finite number")
	case "a number", "a bignum":
		f.bad = append(f.bad, name+" is out of range")
	default:
		f.wrong(name, kind, "a number")
	}
	return 0
}

// kind names what a raw value is, for the reason a request is refused.
func (f *fields) kind(v rawValue) string {
	if f.enc == CBOR {
		return cborKind(v)
	}
	t := bytes.TrimSpace(v)
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '"':
		var s string
		if f.marked && json.Unmarshal(t, &s) == nil && strings.HasPrefix(s, nonFiniteMark) {
			return strings.TrimPrefix(s, nonFiniteMark)
		}
		return "a string"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	case '[':
		return "an array"
	case '{':
		return "an object"
	}
	return "a number"
}

// cborKind names a CBOR data item by its first byte (and, for a float, its
// value).
func cborKind(v rawValue) string {
	if len(v) == 0 {
		return "empty"
	}
	switch v[0] >> 5 {
	case 0, 1:
		return "a number"
	case 2:
		return "a byte string"
	case 3:
		return "a string"
	case 4:
		return "an array"
	case 5:
		return "an object"
	case 6:
		if v[0] == 0xc2 || v[0] == 0xc3 { // tags 2 and 3: bignums
			return "a bignum"
		}
		return "a tagged value"
	}
	switch v[0] {
	case 0xf4, 0xf5:
		return "a bool"
	case 0xf6:
		return "null"
	case 0xf7:
		return "undefined"
	case 0xf9, 0xfa, 0xfb:
		var x float64
		if cborMsgDec.Unmarshal(v, &x) == nil {
			switch {
			case math.IsNaN(x):
				return "NaN"
			case math.IsInf(x, 1):
				return "Infinity"
			case math.IsInf(x, -1):
				return "-Infinity"
			}
		}
		return "a number"
	}
	return "a simple value"
}

// maxLenientJSON bounds the frames markNonFinite rewrites: a request is a
// few hundred bytes, and the copy may be up to four times the frame.
const maxLenientJSON = 64 << 10

// nonFiniteMark starts the strings markNonFinite puts in place of bare
// non-finite numbers; no protocol string starts with a NUL.
const nonFiniteMark = "\x00"

// markNonFinite returns a copy of the JSON text b in which every bare NaN,
// Infinity and -Infinity outside strings (what Python's json module writes
// for non-finite floats, and JSON does not allow) is replaced by a string of
// nonFiniteMark and the token, so that the message decodes and the field can
// be named in the refusal. ok is false when b holds none.
func markNonFinite(b []byte) (out []byte, ok bool) {
	last := 0 // b[last:i] is still to be copied
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"': // skip the string, escapes included
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			continue
		case 'N', 'I', '-':
		default:
			continue
		}
		for _, tok := range []string{"NaN", "Infinity", "-Infinity"} {
			if bytes.HasPrefix(b[i:], []byte(tok)) {
				if out == nil {
					out = make([]byte, 0, len(b)+64)
				}
				out = append(out, b[last:i]...)
				out = append(out, `"\u0000`+tok+`"`...)
				i += len(tok) - 1
				last = i + 1
				break
			}
		}
	}
	if out == nil {
		return nil, false
	}
	return append(out, b[last:]...), true
}

func unmarshal(enc Encoding, b []byte, v any) error {
	if enc == CBOR {
		return cborMsgDec.Unmarshal(b, v)
	}
	return json.Unmarshal(b, v)
}

// isObject reports whether b starts a JSON object or a CBOR map.
func isObject(enc Encoding, b []byte) bool {
	if enc == CBOR {
		return len(b) > 0 && b[0]>>5 == 5
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// isNull reports whether a raw value is null (or CBOR undefined): both
// decoders would leave a typed destination untouched without an error.
func isNull(enc Encoding, v rawValue) bool {
	if enc == CBOR {
		return len(v) == 1 && (v[0] == 0xf6 || v[0] == 0xf7)
	}
	return string(bytes.TrimSpace(v)) == "null"
}

func decodeBool(enc Encoding, v rawValue) (bool, bool) {
	var b bool
	if isNull(enc, v) || unmarshal(enc, v, &b) != nil {
		return false, false
	}
	return b, true
}

func decodeString(enc Encoding, v rawValue) (string, bool) {
	var s string
	if isNull(enc, v) || unmarshal(enc, v, &s) != nil {
		return "", false
	}
	return s, true
}

// decodeNumber reads a JSON number or a CBOR integer or float as float64.
// NaN and the infinities are refused: no field of the protocol can carry
// them.
func decodeNumber(enc Encoding, v rawValue) (float64, bool) {
	if isNull(enc, v) {
		return 0, false
	}
	if enc == CBOR {
		// Integers (major types 0, 1) and floats only: no tags, nothing
		// that would have to be built to be refused.
		if len(v) == 0 || (v[0]>>5 > 1 && v[0] != 0xf9 && v[0] != 0xfa && v[0] != 0xfb) {
			return 0, false
		}
		var f float64
		if cborMsgDec.Unmarshal(v, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return f, true
	}
	var f float64
	if json.Unmarshal(v, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// skipValue consumes a value without keeping it.
type skipValue struct{}

func (skipValue) UnmarshalJSON([]byte) error { return nil }
func (skipValue) UnmarshalCBOR([]byte) error { return nil }

// topKeys returns up to maxKeys first-level keys of an object, sorted, a
// key over maxKeyLen bytes replaced by its length, reading no further than
// needed.
func topKeys(enc Encoding, b []byte) []string {
	var keys []string
	add := func(k string) {
		if len(k) > maxKeyLen {
			k = "(key of " + strconv.Itoa(len(k)) + " bytes)"
		}
		keys = append(keys, k)
	}
	if enc == CBOR {
		// MaxMapPairs bounds the map, and skipValue keeps no value.
		var m map[string]skipValue
		if cborMsgDec.Unmarshal(b, &m) != nil {
			return nil
		}
		for k := range m {
			add(k)
		}
		sort.Strings(keys)
		return keys[:min(len(keys), maxKeys)]
	}
	// b is a valid JSON object (it was decoded): walk it once, taking the
	// strings in key position of the first level, copying nothing else.
	depth, wantKey := 0, false
	for i := 0; i < len(b) && len(keys) < maxKeys; i++ {
		switch b[i] {
		case '{', '[':
			depth++
			wantKey = b[i] == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			wantKey = depth == 1
		case '"':
			j := i + 1
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if depth == 1 && wantKey {
				var k string
				if json.Unmarshal(b[i:min(j+1, len(b))], &k) == nil {
					add(k)
				}
				wantKey = false
			}
			i = j
		}
	}
	sort.Strings(keys)
	return keys
}

// EncodeMessage encodes one device message (a struct with json tags, which
// the CBOR encoder honours too) in enc.
func EncodeMessage(enc Encoding, v any) ([]byte, error) {
	var b []byte
	var err error
	switch enc {
	case CBOR:
		b, err = cborEnc.Marshal(v)
	default:
		b, err = json.Marshal(v)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s message: %w", enc, err)
	}
	return b, nil
}

// Device → server messages (docs/protocols/edge-impulse.md §4). Field order is
// the reference clients'.

type helloMsg struct {
	Hello hello `json:"hello"`
}

type hello struct {
	Version                   int           `json:"version"`
	APIKey                    string        `json:"apiKey"`
	DeviceID                  string        `json:"deviceId"`
	DeviceType                string        `json:"deviceType"`
	Connection                string        `json:"connection"`
	Sensors                   []helloSensor `json:"sensors"`
	SupportsSnapshotStreaming bool          `json:"supportsSnapshotStreaming"`
	// Version 4 with an on-device model (docs/protocols/eim.md §9).
	Mode             string            `json:"mode,omitempty"`
	InferenceInfo    *InferenceInfo    `json:"inferenceInfo,omitempty"`
	AvailableRecords *availableRecords `json:"availableRecords,omitempty"`
}

type helloSensor struct {
	Name             string    `json:"name"`
	MaxSampleLengthS float64   `json:"maxSampleLengthS"`
	Frequencies      []float64 `json:"frequencies"`
}

// sampleReply is {sample:true} or {sample:false, error}. The docs name the
// field err; every reference client sends error (docs/protocols/edge-impulse.md
// §4.5), so do we.
type sampleReply struct {
	Sample bool   `json:"sample"`
	Error  string `json:"error,omitempty"`
}

type sampleStarted struct {
	SampleStarted bool `json:"sampleStarted"`
}

type sampleProcessing struct {
	SampleProcessing bool `json:"sampleProcessing"`
}

type sampleUploading struct {
	SampleUploading bool `json:"sampleUploading"`
}

type sampleFinished struct {
	SampleFinished bool `json:"sampleFinished"`
}

type snapshotStarted struct {
	SnapshotStarted bool `json:"snapshotStarted"`
}

type snapshotStopped struct {
	SnapshotStopped bool `json:"snapshotStopped"`
}

type snapshotFailed struct {
	SnapshotFailed bool   `json:"snapshotFailed"`
	Error          string `json:"error"`
}

type snapshotFrame struct {
	SnapshotFrame string `json:"snapshotFrame"` // base64 JPEG, no data: prefix
	FileName      string `json:"fileName"`
}
