package hub

import (
	"bytes"
	"context"
	"image"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/camjpeg"
	"github.com/edge-agent/edge-agent/sensors"
)

// oneFrame sends one camera frame once start is closed, then waits: the
// test subscribes every reader first, so all of them see that frame (the
// hub starts a source at its first subscriber).
type oneFrame struct {
	jpg   []byte
	start chan struct{}
}

func (o oneFrame) Info() sensors.Info {
	return sensors.Info{Name: "cam", Kind: "test", Class: sensors.Still, Rate: 1, Width: 640, Height: 480}
}

func (o oneFrame) Run(ctx context.Context, out chan<- sensors.Sample) error {
	select {
	case <-o.start:
	case <-ctx.Done():
		return nil
	}
	select {
	case out <- sensors.Sample{Class: sensors.Still, Time: time.Now(), Data: o.jpg}:
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil
}

// TestThumbnailEncodedOncePerFrame: three subscribers of one camera ask
// for the same frame's 96 px preview at the same time; the hub encodes it
// once and all three get the same bytes. A fourth asking for another size
// costs one more encode.
func TestThumbnailEncodedOncePerFrame(t *testing.T) {
	img := image.NewYCbCr(image.Rect(0, 0, 640, 480), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = uint8(i % 251)
	}
	jpg, err := camjpeg.EncodeYCbCr(nil, img, 85)
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{})
	defer h.Close()
	start := make(chan struct{})
	if err := h.Add(oneFrame{jpg: jpg, start: start}); err != nil {
		t.Fatal(err)
	}
	var subs []sensors.Subscription
	for range 3 {
		s, err := h.Subscribe("cam", sensors.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs = append(subs, s)
	}
	close(start)
	outs := make([][]byte, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() {
			smp := <-s.C()
			th, ok := s.(camjpeg.Thumbnailer)
			if !ok {
				t.Error("the hub's subscription does not offer shared previews")
				return
			}
			out, err := th.Thumbnail(t.Context(), smp.Data, 96, 80)
			if err != nil {
				t.Error(err)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	f := h.feeds["cam"]
	if n := f.thumbs.Encodes(); n != 1 {
		t.Fatalf("%d encodes for one frame wanted by three links, want 1", n)
	}
	for _, o := range outs {
		if len(o) == 0 || !bytes.Equal(o, outs[0]) {
			t.Fatal("the links got different previews")
		}
	}
	if _, err := subs[0].(camjpeg.Thumbnailer).Thumbnail(t.Context(), jpg, 48, 80); err != nil {
		t.Fatal(err)
	}
	if n := f.thumbs.Encodes(); n != 2 {
		t.Errorf("%d encodes after a second size, want 2", n)
	}
}
