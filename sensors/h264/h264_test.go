package h264_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/edge-agent/edge-agent/sensors/h264"
)

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "media", name))
	if err != nil {
		t.Fatalf("test media: %v", err)
	}
	return b
}

func TestSplitTestClip(t *testing.T) {
	clip := testdata(t, "testsrc-320x240-15fps-4s.h264")
	// The splitter must give the same units whatever the read sizes.
	for _, r := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", bytes.NewReader(clip)},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(clip))},
		{"half reads", iotest.HalfReader(bytes.NewReader(clip))},
	} {
		t.Run(r.name, func(t *testing.T) {
			s := h264.NewSplitter(r.r)
			var units []h264.AccessUnit
			for {
				au, err := s.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				units = append(units, au)
			}
			if len(units) != 60 { // 4 s at 15 fps
				t.Fatalf("%d access units, want 60", len(units))
			}
			var joined []byte
			keys := 0
			for i, u := range units {
				if u.Keyframe {
					keys++
					if i%15 != 0 {
						t.Errorf("keyframe at %d, want every 15th", i)
					}
					n := h264.SplitNALs(u.Data)
					if h264.NALType(n[0]) != h264.NALSPS || h264.NALType(n[1]) != h264.NALPPS {
						t.Errorf("keyframe %d lacks SPS/PPS in front", i)
					}
				}
				joined = append(joined, u.Data...)
			}
			if keys != 4 {
				t.Errorf("%d keyframes, want 4", keys)
			}
			if got, want := len(h264.SplitNALs(joined)), len(h264.SplitNALs(clip)); got != want {
				t.Errorf("%d NALs after splitting, want %d", got, want)
			}
		})
	}
}

func TestParameterSetsRepeatedForBareIDR(t *testing.T) {
	sc := []byte{0, 0, 0, 1}
	sps := append(append([]byte{}, sc...), 0x67, 0x42, 0x00, 0x1e)
	pps := append(append([]byte{}, sc...), 0x68, 0xce, 0x38, 0x80)
	idr := append(append([]byte{}, sc...), 0x65, 0x88, 0x84)
	p := append(append([]byte{}, sc...), 0x41, 0x9a, 0x02)
	stream := bytes.Join([][]byte{sps, pps, idr, p, idr, p}, nil) // 2nd IDR comes bare
	units, err := h264.SplitAll(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 4 {
		t.Fatalf("%d units", len(units))
	}
	second := units[2]
	if !second.Keyframe || !bytes.HasPrefix(second.Data, append(append([]byte{}, sps...), pps...)) {
		t.Errorf("bare IDR not given the cached SPS/PPS: % x", second.Data)
	}
	if units[1].Keyframe || units[3].Keyframe {
		t.Error("P frame marked as keyframe")
	}
}

func TestGarbageIsBounded(t *testing.T) {
	s := h264.NewSplitter(io.LimitReader(zeros{}, 8<<20))
	_, err := s.Next()
	if !errors.Is(err, h264.ErrNALTooLarge) && err != io.EOF {
		t.Errorf("err = %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xff
	}
	return len(p), nil
}

func FuzzSplitter(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41, 0x9a})
	f.Add([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		units, err := h264.SplitAll(b)
		if err != nil && !errors.Is(err, h264.ErrNALTooLarge) {
			t.Fatal(err)
		}
		for _, u := range units {
			if len(u.Data) == 0 {
				t.Fatal("empty access unit")
			}
		}
	})
}
