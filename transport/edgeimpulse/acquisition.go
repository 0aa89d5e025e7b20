package edgeimpulse

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Acquisition describes a data-acquisition file (docs/protocols/edge-impulse.md
// §6.1): everything but the values, which are streamed row by row through an
// AcqWriter.
type Acquisition struct {
	DeviceName string
	DeviceType string
	// IntervalMs is the time between rows in milliseconds (0.0625 at 16 kHz).
	IntervalMs float64
	// Sensors name the columns, one per axis, in row order.
	Sensors []AcqSensor
	// IAT is protected.iat in seconds since the epoch; 0 omits it (the format
	// wants it only from a clock that can be trusted, §6.1).
	IAT int64
	// Ints writes the values as integers (int16 PCM audio): CBOR major
	// types 0/1 and JSON integers, so a 16 kHz sample stays compact.
	Ints bool
}

// AcqSensor is one column of the values.
type AcqSensor struct {
	Name  string `json:"name" cbor:"name"`
	Units string `json:"units" cbor:"units"`
}

// Signed is the result of a finished AcqWriter: the lowercase hex
// HMAC-SHA256 and where the 64-byte placeholder it replaces sits in the
// stream, so the caller can patch a file in place (WriteAt) or a buffer.
type Signed struct {
	Signature string
	Offset    int64 // of the first placeholder byte
	Size      int64 // total bytes written
	Rows      int
}

// Patch writes the signature over the placeholder of a complete file held in
// b (the in-memory form of what WriteAt does for a file).
func (s Signed) Patch(b []byte) {
	copy(b[s.Offset:s.Offset+64], s.Signature)
}

const sigLen = 64

var zeroSig = bytes.Repeat([]byte{'0'}, sigLen)

// AcqWriter streams a signed acquisition file. The signature field is first
// written as 64 ASCII '0's, every byte written is fed to the HMAC as it goes
// out, and Close returns the digest to write over the placeholder: exactly the
// C ingestion SDK's method (docs/protocols/edge-impulse.md §6.2), so a 60 s
// 16 kHz recording goes from the sensor to disk without ever being held in
// memory.
//
// JSON files carry one array per row, or a flat list of scalars when there is
// a single axis; CBOR files write the signature as a definite 64-byte text
// string (0x78 0x40) and the values as an indefinite array (0x9F … 0xFF) of
// definite rows. An AcqWriter is not safe for concurrent use.
type AcqWriter struct {
	w    io.Writer
	mac  hash.Hash
	enc  Encoding
	ints bool
	axes int

	n      int64
	sigOff int64
	rows   int
	buf    []byte
	err    error
}

type protectedHdr struct {
	Ver string `json:"ver" cbor:"ver"`
	Alg string `json:"alg" cbor:"alg"`
	IAT int64  `json:"iat,omitempty" cbor:"iat,omitempty"`
}

type payloadHdr struct {
	DeviceName string      `json:"device_name,omitempty"`
	DeviceType string      `json:"device_type"`
	IntervalMs float64     `json:"interval_ms"`
	Sensors    []AcqSensor `json:"sensors"`
}

// NewAcqWriter writes the file's head to w and returns the writer for the
// rows. key is the HMAC key: the UTF-8 bytes of the request's hmacKey.
func NewAcqWriter(w io.Writer, enc Encoding, a Acquisition, key []byte) (*AcqWriter, error) {
	if len(a.Sensors) == 0 {
		return nil, errors.New("acquisition: no sensors")
	}
	if math.IsNaN(a.IntervalMs) || math.IsInf(a.IntervalMs, 0) || a.IntervalMs < 0 {
		return nil, fmt.Errorf("acquisition: bad interval %v", a.IntervalMs)
	}
	// Text must be valid UTF-8 in both formats (json.Marshal would silently
	// substitute; a CBOR decoder rejects the file), so clean it up front.
	a.DeviceName = strings.ToValidUTF8(a.DeviceName, "\uFFFD")
	a.DeviceType = strings.ToValidUTF8(a.DeviceType, "\uFFFD")
	clean := make([]AcqSensor, len(a.Sensors))
	for i, s := range a.Sensors {
		clean[i] = AcqSensor{Name: strings.ToValidUTF8(s.Name, "\uFFFD"), Units: strings.ToValidUTF8(s.Units, "\uFFFD")}
	}
	a.Sensors = clean
	aw := &AcqWriter{w: w, mac: hmac.New(sha256.New, key), enc: enc, ints: a.Ints, axes: len(a.Sensors)}
	prot := protectedHdr{Ver: "v1", Alg: "HS256", IAT: a.IAT}
	switch enc {
	case JSON:
		pb, err := json.Marshal(prot)
		if err != nil {
			return nil, fmt.Errorf("acquisition: %w", err)
		}
		hb, err := json.Marshal(payloadHdr{DeviceName: a.DeviceName, DeviceType: a.DeviceType, IntervalMs: a.IntervalMs, Sensors: a.Sensors})
		if err != nil {
			return nil, fmt.Errorf("acquisition: %w", err)
		}
		aw.write([]byte(`{"protected":`))
		aw.write(pb)
		aw.write([]byte(`,"signature":"`))
		aw.sigOff = aw.n
		aw.write(zeroSig)
		aw.write([]byte(`","payload":`))
		aw.write(hb[:len(hb)-1]) // reopen the payload object
		aw.write([]byte(`,"values":[`))
	case CBOR:
		aw.buf = append(aw.buf[:0], 0xA3) // map(3)
		aw.buf = cborText(aw.buf, "protected")
		pb, err := cborEnc.Marshal(prot)
		if err != nil {
			return nil, fmt.Errorf("acquisition: %w", err)
		}
		aw.buf = append(aw.buf, pb...)
		aw.buf = cborText(aw.buf, "signature")
		aw.buf = append(aw.buf, 0x78, sigLen) // definite text, 1-byte length
		aw.write(aw.buf)
		aw.sigOff = aw.n
		aw.write(zeroSig)
		aw.buf = cborText(aw.buf[:0], "payload")
		pairs := 4
		if a.DeviceName != "" {
			pairs = 5
		}
		aw.buf = append(aw.buf, 0xA0|byte(pairs))
		if a.DeviceName != "" {
			aw.buf = cborText(aw.buf, "device_name")
			aw.buf = cborText(aw.buf, a.DeviceName)
		}
		aw.buf = cborText(aw.buf, "device_type")
		aw.buf = cborText(aw.buf, a.DeviceType)
		aw.buf = cborText(aw.buf, "interval_ms")
		aw.buf = cborFloat(aw.buf, a.IntervalMs)
		aw.buf = cborText(aw.buf, "sensors")
		sb, err := cborEnc.Marshal(a.Sensors)
		if err != nil {
			return nil, fmt.Errorf("acquisition: %w", err)
		}
		aw.buf = append(aw.buf, sb...)
		aw.buf = cborText(aw.buf, "values")
		aw.buf = append(aw.buf, 0x9F) // indefinite array
		aw.write(aw.buf)
	default:
		return nil, fmt.Errorf("acquisition: unknown encoding %q", enc)
	}
	return aw, aw.err
}

func (aw *AcqWriter) write(b []byte) {
	if aw.err != nil {
		return
	}
	n, err := aw.w.Write(b)
	aw.n += int64(n)
	aw.mac.Write(b[:n])
	if err != nil {
		aw.err = fmt.Errorf("acquisition: write: %w", err)
	}
}

// WriteRow appends one row: one value per sensor column. Non-finite values
// are refused (neither format can carry them faithfully).
func (aw *AcqWriter) WriteRow(vals []float64) error {
	if aw.err != nil {
		return aw.err
	}
	if len(vals) != aw.axes {
		return fmt.Errorf("acquisition: row %d has %d values, want %d", aw.rows, len(vals), aw.axes)
	}
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("acquisition: row %d: value %v is not finite", aw.rows, v)
		}
	}
	b := aw.buf[:0]
	switch aw.enc {
	case JSON:
		if aw.rows > 0 {
			b = append(b, ',')
		}
		if aw.axes > 1 {
			b = append(b, '[')
		}
		for i, v := range vals {
			if i > 0 {
				b = append(b, ',')
			}
			if aw.ints {
				b = strconv.AppendInt(b, int64(math.Round(v)), 10)
			} else {
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
		}
		if aw.axes > 1 {
			b = append(b, ']')
		}
	case CBOR:
		if aw.axes > 1 {
			b = cborHead(b, 4, uint64(aw.axes))
		}
		for _, v := range vals {
			if aw.ints {
				b = cborInt(b, int64(math.Round(v)))
			} else {
				b = cborFloat(b, v)
			}
		}
	}
	aw.buf = b
	aw.write(b)
	aw.rows++
	return aw.err
}

// Rows returns how many rows were written.
func (aw *AcqWriter) Rows() int { return aw.rows }

// Close writes the file's tail and returns the signature for the
// placeholder. It does not close the underlying writer.
func (aw *AcqWriter) Close() (Signed, error) {
	switch aw.enc {
	case JSON:
		aw.write([]byte(`]}}`))
	case CBOR:
		aw.write([]byte{0xFF}) // break: end of values
	}
	if aw.err != nil {
		return Signed{}, aw.err
	}
	return Signed{Signature: hex.EncodeToString(aw.mac.Sum(nil)), Offset: aw.sigOff, Size: aw.n, Rows: aw.rows}, nil
}

func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

func cborText(b []byte, s string) []byte { return append(cborHead(b, 3, uint64(len(s))), s...) }

func cborFloat(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xFB), math.Float64bits(f))
}

func cborInt(b []byte, v int64) []byte {
	if v >= 0 {
		return cborHead(b, 0, uint64(v))
	}
	return cborHead(b, 1, uint64(-(v + 1)))
}

// AcqFile is a decoded acquisition file.
type AcqFile struct {
	Encoding  Encoding
	Alg       string
	IAT       int64
	Signature string
	Acquisition
	// Values are the rows; a flat single-axis list is returned as one-value
	// rows.
	Values [][]float64
}

// acqDec decodes whole acquisition files: large arrays are expected (a 60 s
// 16 kHz sample has 960 000 values), maps are small.
var acqDec = mustDecMode(cbor.DecOptions{
	DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
	MaxNestedLevels:  8,
	MaxArrayElements: math.MaxInt32,
	MaxMapPairs:      64,
	IndefLength:      cbor.IndefLengthAllowed,
})

// DecodeAcquisition parses a JSON or CBOR acquisition file (sniffed from its
// first byte). It accepts rows of arrays and flat single-axis lists, and
// definite or indefinite CBOR arrays.
func DecodeAcquisition(b []byte) (AcqFile, error) {
	var m map[string]any
	var f AcqFile
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) > 0 && t[0] == '{' {
		f.Encoding = JSON
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return f, fmt.Errorf("decode acquisition: %w", err)
		}
	} else {
		f.Encoding = CBOR
		if err := acqDec.Unmarshal(b, &m); err != nil {
			return f, fmt.Errorf("decode acquisition: %w", err)
		}
	}
	prot, _ := m["protected"].(map[string]any)
	if prot == nil {
		return f, errors.New("decode acquisition: no protected header")
	}
	f.Alg, _ = prot["alg"].(string)
	if iat, ok := num(prot["iat"]); ok {
		f.IAT = int64(iat)
	}
	sig, ok := m["signature"].(string)
	if !ok {
		return f, errors.New("decode acquisition: no signature")
	}
	f.Signature = sig
	pl, _ := m["payload"].(map[string]any)
	if pl == nil {
		return f, errors.New("decode acquisition: no payload")
	}
	f.DeviceName, _ = pl["device_name"].(string)
	f.DeviceType, _ = pl["device_type"].(string)
	if f.IntervalMs, ok = num(pl["interval_ms"]); !ok {
		return f, errors.New("decode acquisition: interval_ms is not a number")
	}
	sens, _ := pl["sensors"].([]any)
	for i, s := range sens {
		sm, _ := s.(map[string]any)
		if sm == nil {
			return f, fmt.Errorf("decode acquisition: sensors[%d] is not an object", i)
		}
		name, _ := sm["name"].(string)
		units, _ := sm["units"].(string)
		f.Sensors = append(f.Sensors, AcqSensor{Name: name, Units: units})
	}
	vals, ok := pl["values"].([]any)
	if !ok {
		return f, errors.New("decode acquisition: values is not an array")
	}
	f.Values = make([][]float64, 0, len(vals))
	for i, v := range vals {
		if row, isRow := v.([]any); isRow {
			r := make([]float64, len(row))
			for j, x := range row {
				if r[j], ok = num(x); !ok {
					return f, fmt.Errorf("decode acquisition: values[%d][%d] is not a number", i, j)
				}
			}
			f.Values = append(f.Values, r)
			continue
		}
		x, isNum := num(v)
		if !isNum {
			return f, fmt.Errorf("decode acquisition: values[%d] is not a number or row", i)
		}
		f.Values = append(f.Values, []float64{x})
	}
	return f, nil
}

func num(v any) (float64, bool) {
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		return f, err == nil
	}
	return number(v)
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

// ErrBadSignature is returned by VerifyAcquisition when the HMAC does not
// match the bytes.
var ErrBadSignature = errors.New("signature does not match")

// VerifyAcquisition checks an HS256 file the way the ingestion service does:
// find the signature bytes, overwrite them with '0's, HMAC the whole buffer
// and compare. b is not modified.
func VerifyAcquisition(b, key []byte) error {
	f, err := DecodeAcquisition(b)
	if err != nil {
		return err
	}
	if len(f.Signature) != sigLen {
		return fmt.Errorf("verify acquisition: signature has %d chars, want %d", len(f.Signature), sigLen)
	}
	var prefix []byte
	if f.Encoding == JSON {
		prefix = []byte(`"signature":"`)
	} else {
		prefix = append(cborText(nil, "signature"), 0x78, sigLen)
	}
	i := bytes.Index(b, append(prefix, f.Signature...))
	if i < 0 {
		return errors.New("verify acquisition: signature not found as a 64-byte string")
	}
	off := i + len(prefix)
	mac := hmac.New(sha256.New, key)
	mac.Write(b[:off])
	mac.Write(zeroSig)
	mac.Write(b[off+sigLen:])
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(f.Signature)) {
		return fmt.Errorf("verify acquisition: %w", ErrBadSignature)
	}
	return nil
}
