package edgeimpulse

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// encodeAll writes a whole file to memory and patches the signature.
func encodeAll(t testing.TB, enc Encoding, a Acquisition, rows [][]float64, key string) []byte {
	var buf bytes.Buffer
	aw, err := NewAcqWriter(&buf, enc, a, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := aw.WriteRow(r); err != nil {
			t.Fatal(err)
		}
	}
	s, err := aw.Close()
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if int64(len(b)) != s.Size {
		t.Fatalf("size %d, signed says %d", len(b), s.Size)
	}
	s.Patch(b)
	return b
}

// TestAcquisitionJSONGolden pins the exact bytes and checks the signature
// with an HMAC computed here, over the text with the 64 '0's in place.
func TestAcquisitionJSONGolden(t *testing.T) {
	a := Acquisition{DeviceName: "dc:a6:32:01:02:03", DeviceType: "RASPBERRY_PI", IntervalMs: 10, IAT: 1764000000,
		Sensors: []AcqSensor{{"accX", "m/s2"}, {"accY", "m/s2"}}}
	got := encodeAll(t, JSON, a, [][]float64{{-9.81, 0.03}, {1, 2.5}}, "0123456789abcdef")
	tmpl := `{"protected":{"ver":"v1","alg":"HS256","iat":1764000000},"signature":"SIG","payload":{"device_name":"dc:a6:32:01:02:03","device_type":"RASPBERRY_PI","interval_ms":10,"sensors":[{"name":"accX","units":"m/s2"},{"name":"accY","units":"m/s2"}],"values":[[-9.81,0.03],[1,2.5]]}}`
	mac := hmac.New(sha256.New, []byte("0123456789abcdef"))
	mac.Write([]byte(strings.Replace(tmpl, "SIG", strings.Repeat("0", 64), 1)))
	want := strings.Replace(tmpl, "SIG", hex.EncodeToString(mac.Sum(nil)), 1)
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestAcquisitionCBORShape(t *testing.T) {
	a := Acquisition{DeviceType: "T", IntervalMs: 0.0625, Sensors: []AcqSensor{{"audio", "wav"}}, Ints: true}
	b := encodeAll(t, CBOR, a, [][]float64{{1}, {-2}, {300}}, "k")
	sig := append([]byte{0x69}, "signature\x78\x40"...)
	if i := bytes.Index(b, sig); i < 0 {
		t.Fatal("signature is not a definite 64-byte text string")
	}
	// values: indefinite array of ints 1, -2, 300, then break, closing the file.
	tail := []byte{0x66, 'v', 'a', 'l', 'u', 'e', 's', 0x9f, 0x01, 0x21, 0x19, 0x01, 0x2c, 0xff}
	if !bytes.HasSuffix(b, tail) {
		t.Fatalf("tail % x, want % x", b[len(b)-len(tail):], tail)
	}
	if err := VerifyAcquisition(b, []byte("k")); err != nil {
		t.Fatal(err)
	}
	b[len(b)-3]++ // corrupt a value
	if err := VerifyAcquisition(b, []byte("k")); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("corrupted file: %v", err)
	}
}

func TestAcquisitionRejects(t *testing.T) {
	var buf bytes.Buffer
	aw, err := NewAcqWriter(&buf, JSON, Acquisition{DeviceType: "T", IntervalMs: 10, Sensors: []AcqSensor{{"x", "N/A"}, {"y", "N/A"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range [][]float64{{1}, {math.NaN(), 1}, {math.Inf(1), 0}} {
		if aw.WriteRow(row) == nil {
			t.Errorf("row %v accepted", row)
		}
	}
	if _, err := NewAcqWriter(&buf, JSON, Acquisition{}, nil); err == nil {
		t.Error("no sensors accepted")
	}
}

// FuzzAcquisitionRoundTrip: whatever rows are encoded, in either encoding,
// decode to the same values and verify; a changed key does not.
func FuzzAcquisitionRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint8(3), false, false, "key")
	f.Add([]byte{0xff, 0x7f, 0, 0x80}, uint8(1), true, true, "")
	f.Add([]byte{}, uint8(2), false, true, "k")
	f.Fuzz(func(t *testing.T, data []byte, axes uint8, ints, useCBOR bool, key string) {
		n := int(axes%8) + 1
		a := Acquisition{DeviceType: "FUZZ", IntervalMs: 1.5, Ints: ints, DeviceName: key}
		for i := 0; i < n; i++ {
			a.Sensors = append(a.Sensors, AcqSensor{Name: "ax" + string(rune('a'+i)), Units: "m/s2"})
		}
		var rows [][]float64
		for len(data) >= 2*n {
			row := make([]float64, n)
			for i := range row {
				v := float64(int16(binary.LittleEndian.Uint16(data)))
				if !ints {
					v /= 7
				}
				row[i] = v
				data = data[2:]
			}
			rows = append(rows, row)
		}
		enc := JSON
		if useCBOR {
			enc = CBOR
		}
		b := encodeAll(t, enc, a, rows, key)
		got, err := DecodeAcquisition(b)
		if err != nil {
			t.Fatalf("decode: %v\n%q", err, b)
		}
		if got.Encoding != enc || got.DeviceType != "FUZZ" || got.IntervalMs != 1.5 || len(got.Sensors) != n || len(got.Values) != len(rows) {
			t.Fatalf("decoded %+v", got)
		}
		for i := range rows {
			for j := range rows[i] {
				if got.Values[i][j] != rows[i][j] {
					t.Fatalf("value [%d][%d] = %v, want %v", i, j, got.Values[i][j], rows[i][j])
				}
			}
		}
		if err := VerifyAcquisition(b, []byte(key)); err != nil {
			t.Fatalf("verify: %v", err)
		}
		if err := VerifyAcquisition(b, []byte(key+"x")); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("verify with another key: %v", err)
		}
	})
}
