package edgeimpulse

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// hostileFrames are frames of about maxMessageBytes built to be as costly as
// possible for a decoder that materialises everything: long arrays of tiny
// numbers (one interface value and one boxed number each), deep in unknown
// keys or inside a known one, and floods of unknown keys.
func hostileFrames(t *testing.T) map[string][]byte {
	t.Helper()
	const size = maxMessageBytes - 64
	frames := map[string][]byte{}

	zeros := func(n int) string { return strings.TrimSuffix(strings.Repeat("0,", n), ",") }
	frames["json/long array"] = []byte(`{"x":[` + zeros(size/2-8) + `]}`)
	frames["json/array in sample"] = []byte(`{"sample":{"label":"a","x":[` + zeros(size/2-32) + `]}}`)
	var keys strings.Builder
	keys.WriteString(`{`)
	for i := 0; keys.Len() < size-16; i++ {
		fmt.Fprintf(&keys, `"k%06d":[0],`, i)
	}
	keys.WriteString(`"z":0}`)
	frames["json/key flood"] = []byte(keys.String())

	// CBOR: MaxArrayElements (4096) per array, so arrays of arrays of
	// one-byte integers.
	var rows []any
	for n := 4096 + 3; n < size-64; n += 4096 + 3 {
		rows = append(rows, make([]uint8, 4096))
	}
	mustCBOR := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	asAny := func(rows []any) []any { // []uint8 would encode as a byte string
		out := make([]any, len(rows))
		for i, r := range rows {
			row := make([]any, len(r.([]uint8)))
			for j := range row {
				row[j] = uint64(0)
			}
			out[i] = row
		}
		return out
	}
	frames["cbor/nested arrays"] = mustCBOR(map[string]any{"x": asAny(rows)})
	frames["cbor/arrays in sample"] = mustCBOR(map[string]any{"sample": map[string]any{"label": "a", "x": asAny(rows[:len(rows)-1])}})
	for name, b := range frames {
		if len(b) > maxMessageBytes || len(b) < maxMessageBytes*9/10 {
			t.Fatalf("%s: frame of %d bytes, want about %d", name, len(b), maxMessageBytes)
		}
	}
	return frames
}

// TestTrustDecodeMemoryBounded: a 1 MiB frame must not cost more than a
// small multiple of itself while it is decoded. Decoding into map[string]any
// held 20 MiB (JSON) / 63 MiB (CBOR) live for such frames. Two figures are
// taken: the live heap (HeapAlloc right after a GC) sampled by a goroutine
// that collects continuously while frames are decoded, and the bytes
// allocated by one decode (an upper bound of what it can hold at any time).
func TestTrustDecodeMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates and collects repeatedly")
	}
	for name, frame := range hostileFrames(t) {
		t.Run(name, func(t *testing.T) {
			enc := JSON
			if strings.HasPrefix(name, "cbor") {
				enc = CBOR
			}
			decode := func() {
				in, err := DecodeMessage(enc, frame)
				if err != nil && !errors.Is(err, ErrMalformed) {
					t.Errorf("decode: %v", err)
				}
				if len(in.Keys) > maxKeys {
					t.Errorf("%d keys kept, want at most %d", len(in.Keys), maxKeys)
				}
			}
			decode() // warm up (decoder caches, type info)
			limit := uint64(3 * len(frame))

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			decode()
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > limit {
				t.Errorf("one decode of a %d-byte frame allocated %.1f MiB, want at most %.1f MiB (3× the frame)",
					len(frame), mib(got), mib(limit))
			}

			runtime.GC()
			runtime.ReadMemStats(&before)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var peak uint64
			samples := 0
			wg.Go(func() {
				var ms runtime.MemStats
				for {
					select {
					case <-stop:
						return
					default:
					}
					runtime.GC()
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapAlloc)
					samples++
				}
			})
			for range 5 {
				decode()
			}
			close(stop)
			wg.Wait()
			if peak > before.HeapAlloc && peak-before.HeapAlloc > limit {
				t.Errorf("live heap while decoding a %d-byte frame rose by %.1f MiB (peak of %d samples), want at most %.1f MiB",
					len(frame), mib(peak-before.HeapAlloc), samples, mib(limit))
			}
		})
	}
}

// TestTrustDecodeKeepsFewKeys: an unknown message's keys are only for the
// log; a key flood must not be kept in the decoded message.
func TestTrustDecodeKeepsFewKeys(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("{")
	for i := range 1000 {
		fmt.Fprintf(&b, `"%s%04d":1,`, strings.Repeat("k", 100), i)
	}
	b.WriteString(`"a":1}`)
	in, err := DecodeMessage(JSON, b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if in.Type != "" || len(in.Keys) == 0 || len(in.Keys) > maxKeys {
		t.Fatalf("type %q, %d keys; want an unknown message with 1..%d keys", in.Type, len(in.Keys), maxKeys)
	}
	for _, k := range in.Keys {
		if len(k) > maxKeyLen+len("…") {
			t.Errorf("key of %d bytes kept", len(k))
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
