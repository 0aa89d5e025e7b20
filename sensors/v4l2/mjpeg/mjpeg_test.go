package mjpeg_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/edge-agent/edge-agent/sensors/v4l2/mjpeg"
	"github.com/edge-agent/edge-agent/sensors/v4l2/v4l2test"
)

func encode(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withAPP1Thumbnail puts an APP1 segment holding a complete small JPEG (an
// EXIF-style thumbnail, FFD8…FFD9) after SOI.
func withAPP1Thumbnail(t testing.TB, jpg []byte) []byte {
	thumb := encode(t, 8, 8)
	n := len(thumb) + 2
	seg := append([]byte{0xFF, 0xE1, byte(n >> 8), byte(n)}, thumb...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// stripDHT removes every DHT segment from the header.
func stripDHT(jpg []byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	i := 2
	for i+4 <= len(jpg) && jpg[i+1] != 0xDA {
		n := int(jpg[i+2])<<8 | int(jpg[i+3])
		if jpg[i+1] != 0xC4 {
			out = append(out, jpg[i:i+2+n]...)
		}
		i += 2 + n
	}
	return append(out, jpg[i:]...)
}

func split(t *testing.T, stream []byte) ([][]byte, error, *mjpeg.Splitter) {
	t.Helper()
	sp := mjpeg.NewSplitter(bytes.NewReader(stream))
	var out [][]byte
	for {
		fr, err := sp.Next()
		if err != nil {
			return out, err, sp
		}
		out = append(out, fr)
	}
}

func TestSplitter(t *testing.T) {
	a, b := encode(t, 32, 24), encode(t, 64, 48)
	thumb := withAPP1Thumbnail(t, a)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name      string
		stream    []byte
		want      [][]byte
		wantErr   error
		skipped   bool
		corrupted uint64
	}{
		{name: "two frames", stream: cat(a, b), want: [][]byte{a, b}, wantErr: io.EOF},
		{name: "garbage between", stream: cat([]byte("junk"), a, []byte{0, 0xFF, 0x12}, b), want: [][]byte{a, b}, wantErr: io.EOF, skipped: true},
		{name: "padding after EOI", stream: cat(a, make([]byte, 100), b), want: [][]byte{a, b}, wantErr: io.EOF, skipped: true},
		{name: "thumbnail in APP1 does not end the frame", stream: cat(thumb, b), want: [][]byte{thumb, b}, wantErr: io.EOF},
		{name: "truncated last frame", stream: cat(a, b[:len(b)/2]), want: [][]byte{a}, wantErr: io.ErrUnexpectedEOF, corrupted: 1},
		{name: "frame cut by a new SOI", stream: cat(a[:len(a)-10], b), want: [][]byte{b}, wantErr: io.EOF, corrupted: 1},
		{name: "empty", stream: nil, wantErr: io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err, sp := split(t, tc.stream)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d frames, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Errorf("frame %d differs (%d vs %d bytes)", i, len(got[i]), len(tc.want[i]))
				}
			}
			if tc.skipped != (sp.Skipped() > 0) {
				t.Errorf("skipped = %d, want some: %v", sp.Skipped(), tc.skipped)
			}
			if sp.Corrupted() < tc.corrupted {
				t.Errorf("corrupted = %d, want >= %d", sp.Corrupted(), tc.corrupted)
			}
		})
	}
}

func TestSplitterRejectsNonJPEG(t *testing.T) {
	sp := mjpeg.NewSplitter(bytes.NewReader(bytes.Repeat([]byte("not a jpeg at all "), 1000)))
	sp.MaxFrame = 4096
	if _, err := sp.Next(); !errors.Is(err, mjpeg.ErrNoFrame) {
		t.Fatalf("err = %v, want ErrNoFrame", err)
	}
}

func TestSplitterSharedMedia(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(v4l2test.TestdataDir(t), "testsrc-640x480-10frames.mjpeg"))
	if err != nil {
		t.Fatal(err)
	}
	frames, err, _ := split(t, b)
	if err != io.EOF {
		t.Fatalf("err = %v", err)
	}
	if len(frames) != 10 {
		t.Fatalf("got %d frames, want 10", len(frames))
	}
	total := 0
	for i, fr := range frames {
		total += len(fr)
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(fr))
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if cfg.Width != 640 || cfg.Height != 480 {
			t.Fatalf("frame %d is %dx%d", i, cfg.Width, cfg.Height)
		}
	}
	if total != len(b) {
		t.Errorf("frames cover %d of %d bytes", total, len(b))
	}
}

func TestEnsureDHT(t *testing.T) {
	full := encode(t, 48, 32)
	bare := stripDHT(full)
	if mjpeg.HasDHT(bare) || !mjpeg.HasDHT(full) {
		t.Fatal("HasDHT is wrong on the fixtures")
	}
	if _, err := jpeg.Decode(bytes.NewReader(bare)); err == nil {
		t.Fatal("a JPEG without DHT decoded; the fixture does not exercise the repair")
	}
	fixed := mjpeg.EnsureDHT(bare)
	want, err := jpeg.Decode(bytes.NewReader(full))
	if err != nil {
		t.Fatal(err)
	}
	got, err := jpeg.Decode(bytes.NewReader(fixed))
	if err != nil {
		t.Fatalf("repaired JPEG does not decode: %v", err)
	}
	wy, gy := want.(*image.YCbCr), got.(*image.YCbCr)
	if !bytes.Equal(wy.Y, gy.Y) || !bytes.Equal(wy.Cb, gy.Cb) || !bytes.Equal(wy.Cr, gy.Cr) {
		t.Error("repaired JPEG decodes to different pixels")
	}
	if same := mjpeg.EnsureDHT(full); !bytes.Equal(same, full) {
		t.Error("EnsureDHT changed a JPEG that had tables")
	}
	if junk := []byte("junk"); !bytes.Equal(mjpeg.EnsureDHT(junk), junk) {
		t.Error("EnsureDHT changed a non-JPEG")
	}
}

func FuzzSplitter(f *testing.F) {
	a := encode(f, 16, 16)
	f.Add(a)
	f.Add(append(append([]byte("xx"), a...), a[:20]...))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xFF, 0xD9})
	f.Fuzz(func(t *testing.T, b []byte) {
		sp := mjpeg.NewSplitter(bytes.NewReader(b))
		sp.MaxFrame = 1 << 16
		total := 0
		for i := 0; i < 1000; i++ {
			fr, err := sp.Next()
			if err != nil {
				break
			}
			if !mjpeg.IsJPEG(fr) {
				t.Fatalf("returned a frame that is not SOI…EOI: % x", fr)
			}
			total += len(fr)
			mjpeg.EnsureDHT(fr)
		}
		if total > len(b) {
			t.Fatalf("frames hold %d bytes from a %d-byte stream", total, len(b))
		}
	})
}
