package frame_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/transport/camserver/frame"
)

func TestEncodeHeader(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want []byte
	}{
		{"empty", 0, []byte{0xAA, 0xAA, 0, 0, 0, 0}},
		{"documented example 100000", 100000, []byte{0xAA, 0xAA, 0xA0, 0x86, 0x01, 0x00}},
		{"max", frame.MaxPayload, []byte{0xAA, 0xAA, 0x20, 0xA1, 0x07, 0x00}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := frame.Encode(make([]byte, tc.n))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b[:frame.HeaderLen], tc.want) || len(b) != frame.HeaderLen+tc.n {
				t.Fatalf("header % x len %d, want % x len %d", b[:6], len(b), tc.want, 6+tc.n)
			}
		})
	}
	if _, err := frame.Encode(make([]byte, frame.MaxPayload+1)); !errors.Is(err, frame.ErrTooLarge) {
		t.Fatalf("oversized encode: %v", err)
	}
}

func TestDecode(t *testing.T) {
	good := func(ps ...string) []byte {
		var b []byte
		for _, p := range ps {
			b, _ = frame.Append(b, []byte(p))
		}
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    []string
		wantErr error
	}{
		{"three frames", good("a", "", "hello"), 0, []string{"a", "", "hello"}, io.EOF},
		{"empty stream", nil, 0, nil, io.EOF},
		{"cut in header", good("abc")[:4], 0, nil, io.ErrUnexpectedEOF},
		{"cut in payload", good("abc")[:8], 0, nil, io.ErrUnexpectedEOF},
		{"bad marker after good", append(good("x"), 0xAB, 0xAA, 0, 0, 0, 0), 0, []string{"x"}, frame.ErrBadMarker},
		{"big-endian header is oversized", []byte{0xAA, 0xAA, 0x00, 0x01, 0x86, 0xA0}, 0, nil, frame.ErrTooLarge},
		{"over custom max", good("12345"), 4, nil, frame.ErrTooLarge},
		{"at custom max", good("1234"), 4, []string{"1234"}, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := frame.NewDecoder(bytes.NewReader(tc.in), tc.max)
			var got []string
			var err error
			for {
				var p []byte
				if p, err = d.Next(); err != nil {
					break
				}
				got = append(got, string(p))
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("frame %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
			var fe *frame.Error
			if errors.As(err, &fe) && fe.Error() == "" {
				t.Fatal("empty error text")
			}
		})
	}
}

func FuzzDecoder(f *testing.F) {
	seed, _ := frame.Append(nil, []byte("seed"))
	seed, _ = frame.Append(seed, nil)
	f.Add(seed)
	f.Add([]byte{0xAA, 0xAA, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0xAA, 0xAA, 0x00, 0x01, 0x86, 0xA0})
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := frame.NewDecoder(bytes.NewReader(in), 1024)
		var out []byte
		for {
			p, err := d.Next()
			if err != nil {
				var fe *frame.Error
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &fe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				break
			}
			if len(p) > 1024 {
				t.Fatalf("payload %d over max", len(p))
			}
			out, _ = frame.Append(out, p)
		}
		// Whatever decoded must re-encode to the same prefix of the input.
		if !bytes.Equal(out, in[:len(out)]) || int64(len(out)) != d.Offset() {
			t.Fatalf("re-encoding differs from input prefix")
		}
	})
}

var sizes = []struct {
	name string
	n    int
}{{"4KiB", 4 << 10}, {"64KiB", 64 << 10}, {"500KB", 500_000}}

// BenchmarkEncode builds one frame (header + payload copy) into a reused
// buffer; compare with BenchmarkCopy of the same size.
func BenchmarkEncode(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			p := make([]byte, s.n)
			buf := make([]byte, 0, s.n+frame.HeaderLen)
			b.SetBytes(int64(s.n))
			for b.Loop() {
				buf, _ = frame.Append(buf[:0], p)
			}
		})
	}
}

func BenchmarkCopy(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			p := make([]byte, s.n)
			buf := make([]byte, s.n+frame.HeaderLen)
			b.SetBytes(int64(s.n))
			for b.Loop() {
				copy(buf, p)
			}
		})
	}
}

// BenchmarkDecode decodes a stream of 64 MiB worth of frames; compare with
// BenchmarkCopyStream, which copies the same pieces out of the same source.
func BenchmarkDecode(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			stream := streamOf(s.n)
			b.SetBytes(int64(len(stream)))
			for b.Loop() {
				d := frame.NewDecoder(bytes.NewReader(stream), 0)
				for {
					if _, err := d.Next(); err != nil {
						break
					}
				}
			}
		})
	}
}

func BenchmarkCopyStream(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			stream := streamOf(s.n)
			dst := make([]byte, s.n+frame.HeaderLen)
			b.SetBytes(int64(len(stream)))
			for b.Loop() {
				r := bytes.NewReader(stream)
				for {
					if _, err := io.ReadFull(r, dst); err != nil {
						break
					}
				}
			}
		})
	}
}

func streamOf(n int) []byte {
	p := make([]byte, n)
	var out []byte
	for len(out) < 64<<20 {
		out, _ = frame.Append(out, p)
	}
	return out
}

// BenchmarkRatio alternates encode and copy (and decode and stream copy) in
// short rounds inside one benchmark, so that load from other processes hits
// both sides alike, and reports time(framing)/time(copy) as a metric.
func BenchmarkRatio(b *testing.B) {
	for _, s := range sizes {
		b.Run("encode-vs-copy/"+s.name, func(b *testing.B) {
			p := make([]byte, s.n)
			buf := make([]byte, 0, s.n+frame.HeaderLen)
			dst := make([]byte, s.n+frame.HeaderLen)
			var te, tc time.Duration
			for b.Loop() {
				t0 := time.Now()
				for range 64 {
					buf, _ = frame.Append(buf[:0], p)
				}
				t1 := time.Now()
				for range 64 {
					copy(dst, p)
				}
				te += t1.Sub(t0)
				tc += time.Since(t1)
			}
			b.ReportMetric(float64(te)/float64(tc), "encode/copy")
		})
		b.Run("decode-vs-copy/"+s.name, func(b *testing.B) {
			stream := streamOf(s.n)[:16<<20]
			dst := make([]byte, s.n+frame.HeaderLen)
			var td, tc time.Duration
			for b.Loop() {
				t0 := time.Now()
				d := frame.NewDecoder(bytes.NewReader(stream), 0)
				for {
					if _, err := d.Next(); err != nil {
						break
					}
				}
				t1 := time.Now()
				r := bytes.NewReader(stream)
				for {
					if _, err := io.ReadFull(r, dst); err != nil {
						break
					}
				}
				td += t1.Sub(t0)
				tc += time.Since(t1)
			}
			b.ReportMetric(float64(td)/float64(tc), "decode/copy")
		})
	}
}
