package edgeimpulse

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestDecodeMessage(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Inbound
		err  bool
	}{
		{"hello ok", `{"hello":true}`, Inbound{Type: "hello", HelloOK: true}, false},
		{"hello refused", `{"hello":false,"err":"Invalid API key"}`, Inbound{Type: "hello", Err: "Invalid API key"}, false},
		{"sample", `{"sample":{"path":"/api/training/data","label":"idle","length":10000,"interval":0.0625,"hmacKey":"k","sensor":"Microphone","extra":1}}`,
			Inbound{Type: "sample", Sample: SampleRequest{Path: "/api/training/data", Label: "idle", Length: 10000, Interval: 0.0625, HMACKey: "k", Sensor: "Microphone"}}, false},
		{"snapshot default low", `{"startSnapshot":true}`, Inbound{Type: "startSnapshot", Resolution: "low"}, false},
		{"snapshot high", `{"startSnapshot":true,"resolution":"high"}`, Inbound{Type: "startSnapshot", Resolution: "high"}, false},
		{"stop", `{"stopSnapshot":true}`, Inbound{Type: "stopSnapshot"}, false},
		{"generic err", `{"err":"Failed to parse message"}`, Inbound{Type: "err", Err: "Failed to parse message"}, false},
		{"unknown", `{"impulseDebug":true}`, Inbound{}, false},
		{"start inference", `{"startInferenceStream":true}`, Inbound{Type: "startInferenceStream"}, false},
		{"stop inference", `{"stopInferenceStream":true}`, Inbound{Type: "stopInferenceStream"}, false},
		{"new model", `{"newModelAvailable":true,"deploymentVersion":12}`, Inbound{Type: "newModelAvailable"}, false},
		{"record ack", `{"impulseRecordAck":true,"index":3}`, Inbound{Type: "impulseRecordAck", Ack: true}, false},
		{"record refused", `{"impulseRecordAck":false,"index":3,"error":"too big"}`, Inbound{Type: "impulseRecordAck", Err: "too big"}, false},
		{"record ack wrong type", `{"impulseRecordAck":"yes"}`, Inbound{}, true},
		{"records request", `{"impulseRecordRequest":{"index":1}}`, Inbound{Type: "impulseRecordRequest"}, false},
		{"sample wrong type", `{"sample":true}`, Inbound{}, true},
		{"length wrong type", `{"sample":{"length":"10"}}`, Inbound{}, true},
		{"not an object", `[1]`, Inbound{}, true},
		{"null", `null`, Inbound{}, true},
		{"garbage", `{`, Inbound{}, true},
	}
	for _, c := range cases {
		for _, enc := range []Encoding{JSON, CBOR} {
			t.Run(c.name+"/"+string(enc), func(t *testing.T) {
				b := []byte(c.in)
				if enc == CBOR {
					var v any
					if err := jsonUnmarshal(b, &v); err != nil {
						b = []byte{0xff} // not valid either way
					} else if b, err = cbor.Marshal(v); err != nil {
						t.Fatal(err)
					}
				}
				got, err := DecodeMessage(enc, b)
				if c.err {
					if !errors.Is(err, ErrMalformed) {
						t.Fatalf("err = %v, want ErrMalformed", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got.Keys = nil
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("got %+v, want %+v", got, c.want)
				}
			})
		}
	}
}

// FuzzDecodeMessageJSON: any input decodes or fails with ErrMalformed.
func FuzzDecodeMessageJSON(f *testing.F) {
	for _, s := range []string{`{"hello":true}`, `{"hello":false,"err":"x"}`, `{"sample":{"label":"a","length":1000,"interval":10,"sensor":"s","path":"/p","hmacKey":"k"}}`,
		`{"startSnapshot":true,"resolution":"high"}`, `{"stopSnapshot":true}`, `{"err":"e"}`, `[]`, `{"sample":{"length":1e400}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecode(t, JSON, b)
	})
}

// FuzzDecodeMessageCBOR: the same for CBOR, including indefinite lengths.
func FuzzDecodeMessageCBOR(f *testing.F) {
	for _, v := range []any{map[string]any{"hello": true}, map[string]any{"hello": false, "err": "x"},
		map[string]any{"sample": map[string]any{"label": "a", "length": uint64(1000), "interval": 0.0625, "sensor": "s", "path": "/p"}},
		map[string]any{"startSnapshot": true}, map[string]any{"stopSnapshot": true}, []int{1}} {
		b, _ := cbor.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0xbf, 0x65, 'h', 'e', 'l', 'l', 'o', 0xf5, 0xff}) // indefinite map
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecode(t, CBOR, b)
	})
}

func fuzzDecode(t *testing.T, enc Encoding, b []byte) {
	in, err := DecodeMessage(enc, b)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		// A request the session answers says why it is refused.
		if (in.Type == msgSample || in.Type == msgStartSnapshot) != (in.Invalid != "") {
			t.Fatalf("malformed %q message with reason %q", in.Type, in.Invalid)
		}
		return
	}
	if in.Type == msgStartSnapshot && in.Resolution == "" {
		t.Fatal("startSnapshot without a resolution")
	}
	// A decoded sample request survives a re-encode unchanged.
	if in.Type == msgSample {
		out, err := EncodeMessage(enc, map[string]any{"sample": in.Sample})
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeMessage(enc, out)
		if err != nil || again.Sample != in.Sample {
			t.Fatalf("re-encode: %+v vs %+v (%v)", again.Sample, in.Sample, err)
		}
	}
}

// TestDecodeMessageInvalid: a sample or startSnapshot request with
// wrong-typed fields keeps its type and says what is wrong (the session
// answers it with the reason); other malformed messages carry no type.
func TestDecodeMessageInvalid(t *testing.T) {
	cases := []struct {
		name string
		json string
		cbor any // nil: the JSON case only (no CBOR form)
		typ  string
		why  string
	}{
		{"string length", `{"sample":{"label":"a","length":"10"}}`, map[string]any{"sample": map[string]any{"label": "a", "length": "10"}},
			"sample", "length is a string, not a number"},
		{"two wrong fields", `{"sample":{"label":1,"length":true}}`, map[string]any{"sample": map[string]any{"label": 1, "length": true}},
			"sample", "label is a number, not a string; length is a bool, not a number"},
		{"NaN length", `{"sample":{"length":NaN}}`, map[string]any{"sample": map[string]any{"length": math.NaN()}},
			"sample", "length is NaN, not a finite number"},
		{"infinite interval", `{"sample":{"interval":-Infinity}}`, map[string]any{"sample": map[string]any{"interval": math.Inf(-1)}},
			"sample", "interval is -Infinity, not a finite number"},
		{"NaN label", `{"sample":{"label":NaN}}`, map[string]any{"sample": map[string]any{"label": math.NaN()}},
			"sample", "label is NaN, not a string"},
		{"out of range", `{"sample":{"length":1e400}}`, map[string]any{"sample": map[string]any{"length": new(big.Int).Lsh(big.NewInt(1), 70)}},
			"sample", "length is out of range"},
		{"sample a string", `{"sample":"x"}`, map[string]any{"sample": "x"}, "sample", "sample is a string, not an object"},
		{"sample null", `{"sample":null}`, map[string]any{"sample": nil}, "sample", "sample is null, not an object"},
		{"resolution a bool", `{"startSnapshot":true,"resolution":true}`, map[string]any{"startSnapshot": true, "resolution": true},
			"startSnapshot", "resolution is a bool, not a string"},
		{"NaN elsewhere", `{"sample":{"label":"a","length":1000,"extra":NaN}}`, nil,
			"sample", "a field holds NaN or an infinity, which JSON does not allow"},
		{"hello not a bool", `{"hello":"yes"}`, map[string]any{"hello": "yes"}, "", ""},
		{"err not a string", `{"err":NaN}`, map[string]any{"err": math.NaN()}, "", ""},
	}
	for _, c := range cases {
		for _, enc := range []Encoding{JSON, CBOR} {
			if enc == CBOR && c.cbor == nil {
				continue
			}
			t.Run(c.name+"/"+string(enc), func(t *testing.T) {
				b := []byte(c.json)
				if enc == CBOR {
					var err error
					if b, err = cbor.Marshal(c.cbor); err != nil {
						t.Fatal(err)
					}
				}
				in, err := DecodeMessage(enc, b)
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				if in.Type != c.typ || in.Invalid != c.why {
					t.Errorf("type %q invalid %q, want %q %q", in.Type, in.Invalid, c.typ, c.why)
				}
			})
		}
	}
	// Null and empty resolutions mean low, as an absent one; any other
	// string is passed on (the session streams low for it).
	for in, want := range map[string]string{`{"startSnapshot":true,"resolution":null}`: "low",
		`{"startSnapshot":true,"resolution":""}`: "low", `{"startSnapshot":true,"resolution":"medium"}`: "medium"} {
		got, err := DecodeMessage(JSON, []byte(in))
		if err != nil || got.Resolution != want {
			t.Errorf("%s: resolution %q (%v), want %q", in, got.Resolution, err, want)
		}
	}
}

// TestMarkNonFinite: bare NaN and infinities become marked strings; the
// same letters inside strings, escaped quotes included, stay as they are.
func TestMarkNonFinite(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":NaN}`, `{"a":"\u0000NaN"}`},
		{`[Infinity,-Infinity,-1]`, `["\u0000Infinity","\u0000-Infinity",-1]`},
		{`{"NaN":"Infinity","x\"NaN":NaN}`, `{"NaN":"Infinity","x\"NaN":"\u0000NaN"}`},
	}
	for _, c := range cases {
		got, ok := markNonFinite([]byte(c.in))
		if !ok || string(got) != c.want {
			t.Errorf("%s: %s %v, want %s", c.in, got, ok, c.want)
		}
	}
	if _, ok := markNonFinite([]byte(`{"label":"NaN","length":-1}`)); ok {
		t.Error("a frame without bare tokens was rewritten")
	}
}
