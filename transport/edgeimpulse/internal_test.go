package edgeimpulse

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPicker(t *testing.T) {
	cases := []struct {
		name    string
		in, out float64
		rows    int
		want    []int // input indexes picked
	}{
		{"same rate", 100, 100, 4, []int{0, 1, 2, 3}},
		{"half", 100, 50, 3, []int{0, 2, 4}},
		{"two thirds", 75, 50, 4, []int{0, 1, 3, 4}},
		{"double (hold)", 50, 100, 5, []int{0, 0, 1, 1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPicker(c.in, c.out, c.rows)
			var got []int
			for n := 0; !p.done(); n++ {
				if err := p.feed([]float64{float64(n)}, func(r []float64) error {
					got = append(got, int(r[0]))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestScaleJPEG(t *testing.T) {
	cases := []struct{ w, h, wantW, wantH int }{
		{320, 240, 128, 96},
		{640, 480, 128, 96},
		{1920, 1080, 171, 96},
		{96, 64, 96, 64}, // already small: unchanged
	}
	for _, c := range cases {
		img := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
		for y := 0; y < c.h; y++ {
			for x := 0; x < c.w; x++ {
				img.Set(x, y, color.RGBA{200, 30, 30, 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, nil); err != nil {
			t.Fatal(err)
		}
		out, err := scaleJPEG(t.Context(), nil, buf.Bytes(), 96)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if b := dec.Bounds(); b.Dx() != c.wantW || b.Dy() != c.wantH {
			t.Errorf("%dx%d → %dx%d, want %dx%d", c.w, c.h, b.Dx(), b.Dy(), c.wantW, c.wantH)
		}
		r, g, _, _ := dec.At(c.wantW/2, c.wantH/2).RGBA()
		if r>>8 < 170 || g>>8 > 70 {
			t.Errorf("%dx%d: colour not kept: r=%d g=%d", c.w, c.h, r>>8, g>>8)
		}
	}
	if _, err := scaleJPEG(t.Context(), nil, []byte("not a jpeg"), 96); err == nil {
		t.Error("garbage accepted")
	}
}

func BenchmarkAcqWriter(b *testing.B) {
	for _, enc := range []Encoding{JSON, CBOR} {
		b.Run(string(enc)+"/6000x3", func(b *testing.B) {
			a := Acquisition{DeviceType: "T", IntervalMs: 10, Sensors: []AcqSensor{{"x", "m/s2"}, {"y", "m/s2"}, {"z", "m/s2"}}}
			row := []float64{0.123456, -9.81, 1.5}
			for b.Loop() {
				aw, _ := NewAcqWriter(io.Discard, enc, a, []byte("k"))
				for i := 0; i < 6000; i++ {
					_ = aw.WriteRow(row)
				}
				_, _ = aw.Close()
			}
		})
	}
}

func BenchmarkScaleJPEG(b *testing.B) {
	for _, size := range []image.Point{{320, 240}, {640, 480}} {
		img := image.NewRGBA(image.Rect(0, 0, size.X, size.Y))
		var buf bytes.Buffer
		_ = jpeg.Encode(&buf, img, nil)
		b.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(b *testing.B) {
			for b.Loop() {
				if _, err := scaleJPEG(b.Context(), nil, buf.Bytes(), 96); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLowPacer: low snapshots keep one frame per 200 ms of capture time on
// average whatever the camera's rate and jitter (two frames sent are never
// under 150 ms apart, and n frames never span less than n-1 intervals minus
// 50 ms), and a camera at 10 fps with ±20 ms of jitter gives exactly every
// other frame, one at 5 fps or slower every frame.
func TestLowPacer(t *testing.T) {
	const interval = 200 * time.Millisecond
	cases := []struct {
		fps    float64
		jitter time.Duration
		want   string // all | half | "" (only the bounds)
	}{
		{10, 0, "half"},
		{10, 20 * time.Millisecond, "half"},
		{5, 20 * time.Millisecond, "all"},
		{4, 20 * time.Millisecond, "all"},
		{30, 5 * time.Millisecond, ""},
		{7, 10 * time.Millisecond, ""},
		{10.05, 20 * time.Millisecond, ""},
		{24, 0, ""},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%gfps±%v", c.fps, c.jitter), func(t *testing.T) {
			p := newLowPacer(interval)
			rnd := rand.New(rand.NewPCG(1, 2))
			t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			period := time.Duration(float64(time.Second) / c.fps)
			const frames = 600
			var sent []time.Time
			for i := range frames {
				at := t0.Add(time.Duration(i)*period + time.Duration((rnd.Float64()*2-1)*float64(c.jitter)))
				if p.admit(at) {
					sent = append(sent, at)
				}
			}
			for i := 1; i < len(sent); i++ {
				if g := sent[i].Sub(sent[i-1]); g < interval*3/4 {
					t.Fatalf("frames %d and %d sent %v apart", i-1, i, g)
				}
			}
			if n := len(sent); time.Duration(n-1)*interval > sent[n-1].Sub(sent[0])+interval/4 {
				t.Errorf("%d frames in %v", n, sent[n-1].Sub(sent[0]))
			}
			switch {
			case c.want == "all" && len(sent) != frames, c.want == "half" && len(sent) != frames/2:
				t.Errorf("%d of %d frames sent, want %s", len(sent), frames, c.want)
			}
			t.Logf("%d of %d frames sent: %.2f fps", len(sent), frames, float64(len(sent))/(time.Duration(frames)*period).Seconds())
		})
	}
	// A clock set back starts afresh: the frame is sent, and pacing goes on
	// from it.
	p := newLowPacer(interval)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []bool
	for _, ms := range []int{0, 100, 200, 300, 400, 50, 150, 250, 300} {
		got = append(got, p.admit(t0.Add(time.Duration(ms)*time.Millisecond)))
	}
	if want := []bool{true, false, true, false, true, true, false, true, false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("admitted %v, want %v", got, want)
	}
}
