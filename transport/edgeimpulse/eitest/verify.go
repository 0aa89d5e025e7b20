package eitest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"

	"github.com/fxamacker/cbor/v2"
)

// This file checks data-acquisition files the way the ingestion service does
// (docs/protocols/edge-impulse.md §6.2), written independently of the link's
// encoder so a bug there cannot hide itself.

var (
	jsonSig = regexp.MustCompile(`"signature"\s*:\s*"([0-9a-fA-F]{64})"`)
	cborSig = append([]byte{0x69}, []byte("signature\x78\x40")...)
)

var acqDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
		MaxArrayElements: math.MaxInt32,
		IndefLength:      cbor.IndefLengthAllowed,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// File is what the fake learned from an acquisition file.
type File struct {
	Encoding   string // json | cbor
	Signature  string
	DeviceType string
	IntervalMs float64
	Sensors    []string
	Rows       int
	// Width is the number of values per row (1 for a flat list).
	Width int
	// First is the first row, for spot checks.
	First []float64
	// IAT is protected.iat, 0 when the file has none.
	IAT int64
}

// Verify locates the 64-character signature, HMACs the buffer with those
// bytes set to '0' and compares; then it decodes the file.
func Verify(b, key []byte) (File, error) {
	var f File
	off := -1
	var sig string
	if m := jsonSig.FindSubmatchIndex(b); m != nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		f.Encoding = "json"
		off = m[2]
		sig = string(b[m[2]:m[3]])
	} else if i := bytes.Index(b, cborSig); i >= 0 && len(b) >= i+len(cborSig)+64 {
		f.Encoding = "cbor"
		off = i + len(cborSig)
		sig = string(b[off : off+64])
	} else {
		return f, errors.New("no 64-character signature string found")
	}
	f.Signature = sig
	mac := hmac.New(sha256.New, key)
	mac.Write(b[:off])
	mac.Write(bytes.Repeat([]byte{'0'}, 64))
	mac.Write(b[off+64:])
	if want := hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(want), []byte(sig)) {
		return f, errors.New("signature mismatch")
	}
	var doc map[string]any
	var err error
	if f.Encoding == "json" {
		err = json.Unmarshal(b, &doc)
	} else {
		err = acqDec.Unmarshal(b, &doc)
	}
	if err != nil {
		return f, fmt.Errorf("decode: %w", err)
	}
	if prot, ok := doc["protected"].(map[string]any); ok {
		if iat, ok := toFloat(prot["iat"]); ok {
			f.IAT = int64(iat)
		}
	}
	pl, _ := doc["payload"].(map[string]any)
	if pl == nil {
		return f, errors.New("no payload")
	}
	f.DeviceType, _ = pl["device_type"].(string)
	f.IntervalMs, _ = toFloat(pl["interval_ms"])
	if ss, ok := pl["sensors"].([]any); ok {
		for _, s := range ss {
			if m, ok := s.(map[string]any); ok {
				n, _ := m["name"].(string)
				f.Sensors = append(f.Sensors, n)
			}
		}
	}
	vals, ok := pl["values"].([]any)
	if !ok {
		return f, errors.New("values is not an array")
	}
	f.Rows = len(vals)
	for i, v := range vals {
		row, isRow := v.([]any)
		if !isRow {
			row = []any{v}
		}
		if i == 0 {
			f.Width = len(row)
		} else if len(row) != f.Width {
			return f, fmt.Errorf("row %d has %d values, row 0 has %d", i, len(row), f.Width)
		}
		for j, x := range row {
			n, ok := toFloat(x)
			if !ok {
				return f, fmt.Errorf("values[%d][%d] is not a number", i, j)
			}
			if i == 0 {
				f.First = append(f.First, n)
			}
		}
	}
	if f.Width != len(f.Sensors) && f.Rows > 0 {
		return f, fmt.Errorf("rows have %d values for %d sensors", f.Width, len(f.Sensors))
	}
	return f, nil
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}
