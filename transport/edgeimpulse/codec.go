package edgeimpulse

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// Encoding is the wire encoding of a remote-management session. The Hello's
// encoding fixes it for the whole session (spec §1): JSON travels in text
// frames, CBOR in binary frames.
type Encoding string

// Encodings.
const (
	JSON Encoding = "json"
	CBOR Encoding = "cbor"
)

// Inbound message types (the first-level key of a server message, spec §3).
const (
	msgHello         = "hello"
	msgErr           = "err"
	msgSample        = "sample"
	msgStartSnapshot = "startSnapshot"
	msgStopSnapshot  = "stopSnapshot"
)

// knownInbound lists the server messages the link acts on, in dispatch
// priority: a message is typed by the first of these keys it carries.
var knownInbound = []string{msgHello, msgSample, msgStartSnapshot, msgStopSnapshot, msgErr}

// maxMessageBytes bounds one inbound frame. Server messages are small; a
// bigger frame is a peer bug and is refused by the socket's read limit.
const maxMessageBytes = 1 << 20

// ErrMalformed marks an inbound message that could not be decoded or whose
// fields have the wrong types. The session logs it and carries on.
var ErrMalformed = errors.New("malformed message")

// cborMsgDec decodes server messages: maps become map[string]any so JSON and
// CBOR messages are handled by the same code, with tight limits because the
// input is a peer's.
var cborMsgDec = mustDecMode(cbor.DecOptions{
	DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
	MaxNestedLevels:  16,
	MaxArrayElements: 4096,
	MaxMapPairs:      256,
	DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	IndefLength:      cbor.IndefLengthAllowed,
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
	// Keys are all first-level keys, sorted (for logs about unknown messages).
	Keys []string

	// HelloOK is the value of a hello reply; Err is its (or a generic) error.
	HelloOK bool
	Err     string
	// Sample is the sample request.
	Sample SampleRequest
	// Resolution is startSnapshot's "low" (default) or "high".
	Resolution string
}

// SampleRequest is Studio's `sample` message (spec §3.4). Length and Interval
// are milliseconds; Interval may be fractional (0.0625 for 16 kHz).
type SampleRequest struct {
	Label    string  `json:"label"`
	Length   float64 `json:"length"`
	Path     string  `json:"path"`
	HMACKey  string  `json:"hmacKey"`
	Interval float64 `json:"interval"`
	Sensor   string  `json:"sensor"`
}

// DecodeMessage decodes one server message in enc. Unknown top-level and
// nested fields are ignored (the spec asks for leniency); a message that is
// not an object, or whose known fields have the wrong type, returns an error
// wrapping ErrMalformed.
func DecodeMessage(enc Encoding, b []byte) (Inbound, error) {
	var m map[string]any
	var err error
	switch enc {
	case CBOR:
		err = cborMsgDec.Unmarshal(b, &m)
	default:
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return Inbound{}, fmt.Errorf("decode %s message: %w: %v", enc, ErrMalformed, err)
	}
	if m == nil {
		return Inbound{}, fmt.Errorf("decode %s message: %w: not an object", enc, ErrMalformed)
	}
	in := Inbound{Keys: make([]string, 0, len(m))}
	for k := range m {
		in.Keys = append(in.Keys, k)
	}
	sort.Strings(in.Keys)
	for _, k := range knownInbound {
		if _, ok := m[k]; ok {
			in.Type = k
			break
		}
	}
	bad := func(field, want string) (Inbound, error) {
		return Inbound{}, fmt.Errorf("decode %s message %q: %w: %s is not %s", enc, in.Type, ErrMalformed, field, want)
	}
	switch in.Type {
	case msgHello:
		ok, isBool := m[msgHello].(bool)
		if !isBool {
			return bad("hello", "a bool")
		}
		in.HelloOK = ok
		if e, present := m["err"]; present {
			s, isStr := e.(string)
			if !isStr {
				return bad("err", "a string")
			}
			in.Err = s
		}
	case msgErr:
		s, isStr := m[msgErr].(string)
		if !isStr {
			return bad("err", "a string")
		}
		in.Err = s
	case msgSample:
		sm, isMap := m[msgSample].(map[string]any)
		if !isMap {
			return bad("sample", "an object")
		}
		var r SampleRequest
		var okAll = true
		str := func(k string, dst *string) {
			if v, present := sm[k]; present {
				s, isStr := v.(string)
				okAll = okAll && isStr
				*dst = s
			}
		}
		num := func(k string, dst *float64) {
			if v, present := sm[k]; present {
				f, isNum := number(v)
				okAll = okAll && isNum
				*dst = f
			}
		}
		str("label", &r.Label)
		str("path", &r.Path)
		str("hmacKey", &r.HMACKey)
		str("sensor", &r.Sensor)
		num("length", &r.Length)
		num("interval", &r.Interval)
		if !okAll {
			return bad("a sample field", "of the right type")
		}
		in.Sample = r
	case msgStartSnapshot:
		in.Resolution = "low"
		if v, present := m["resolution"]; present {
			s, isStr := v.(string)
			if !isStr {
				return bad("resolution", "a string")
			}
			if s != "" {
				in.Resolution = s
			}
		}
	}
	return in, nil
}

// number converts a decoded JSON or CBOR number to float64. NaN and the
// infinities are refused: no field of the protocol can carry them.
func number(v any) (float64, bool) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case float32:
		f = float64(n)
	case uint64:
		f = float64(n)
	case int64:
		f = float64(n)
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
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

// Device → server messages (spec §3). Field order is the reference clients'.

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
}

type helloSensor struct {
	Name             string    `json:"name"`
	MaxSampleLengthS float64   `json:"maxSampleLengthS"`
	Frequencies      []float64 `json:"frequencies"`
}

// sampleReply is {sample:true} or {sample:false, error}. The docs name the
// field err; every reference client sends error (spec §3.5), so do we.
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
