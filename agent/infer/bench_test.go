package infer

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

// The runner's own cost per classification: feature extraction, the JSON
// request, the socket round trip to the model and decoding its answer
// (docs/protocols/eim.md §11). The fake model answers at once, so what is
// measured is the runner plus the fake's JSON parsing, the part a real
// model reports as its json/stdin timing; a real model's DSP and inference
// come on top.
//
//	go test -run '^$' -bench BenchmarkRunner -benchmem ./agent/infer/

// patternJPEG is a w×h frame with detail (a gradient and bars), as a camera
// would send it.
func patternJPEG(b testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x / 8 % 2) * 200), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func benchProcess(b *testing.B, params map[string]any) *Process {
	dir := b.TempDir()
	path := writeModel(b, dir, "bench.eim", fakeConfig{Project: project(), Params: params})
	p, err := Start(context.Background(), path, ProcessOptions{RuntimeDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

func BenchmarkRunner(b *testing.B) {
	ctx := context.Background()
	b.Run("image96x96", func(b *testing.B) {
		params := imageParams(96, 96, 3, "squash", "classification", "a", "b")
		p := benchProcess(b, params)
		ex, err := newExtractor(p.Model(), sensors.Info{Name: "cam", Class: sensors.Still}, 0)
		if err != nil {
			b.Fatal(err)
		}
		frame := sensors.Sample{Class: sensors.Still, Data: patternJPEG(b, 96, 96)}
		classify := func(w window) error { _, err := p.Classify(ctx, w.features, false, 5*time.Second); return err }
		b.Run("features", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ex.add(frame, func(window) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("request", func(b *testing.B) {
			benchRequest(b, ex, frame)
		})
		b.Run("total", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ex.add(frame, classify); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("image320x240to96x96", func(b *testing.B) {
		p := benchProcess(b, imageParams(96, 96, 3, "fit-shortest", "classification", "a", "b"))
		ex, err := newExtractor(p.Model(), sensors.Info{Name: "cam", Class: sensors.Still}, 0)
		if err != nil {
			b.Fatal(err)
		}
		frame := sensors.Sample{Class: sensors.Still, Data: patternJPEG(b, 320, 240)}
		b.ReportAllocs()
		for b.Loop() {
			if err := ex.add(frame, func(w window) error { _, err := p.Classify(ctx, w.features, false, 5*time.Second); return err }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("audio1s", func(b *testing.B) {
		p := benchProcess(b, audioParams(16000, 0, 16000, false, "a", "b"))
		// A stride of the whole window: one 1 s block, one window.
		ex, err := newExtractor(p.Model(), sensors.Info{Name: "mic", Class: sensors.Audio, Rate: 16000, Channels: 1}, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		block := pcmBlocks(tone(0, 16000, 440, 16000), 16000)[0]
		seq := uint64(0)
		next := func() sensors.Sample {
			block.Seq = seq
			seq++
			return block
		}
		b.Run("features", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ex.add(next(), func(window) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("request", func(b *testing.B) {
			benchRequest(b, ex, next())
		})
		b.Run("total", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ex.add(next(), func(w window) error { _, err := p.Classify(ctx, w.features, false, 5*time.Second); return err }); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// benchRequest measures encoding the classify request for the window smp
// makes: the runner's JSON cost, without the socket.
func benchRequest(b *testing.B, ex extractor, smp sensors.Sample) {
	var features []float32
	if err := ex.add(smp, func(w window) error { features = append(features[:0], w.features...); return nil }); err != nil || features == nil {
		b.Fatalf("no window: %v", err)
	}
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(4 * len(features)))
	for b.Loop() {
		buf = appendFeatures(buf[:0], features)
	}
}
