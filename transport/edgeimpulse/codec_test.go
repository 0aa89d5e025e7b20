package edgeimpulse

import (
	"errors"
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
		{"unknown", `{"startInferenceStream":true}`, Inbound{}, false},
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
