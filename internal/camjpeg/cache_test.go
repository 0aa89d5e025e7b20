package camjpeg

import (
	"bytes"
	"context"
	"errors"
	"image"
	"sync"
	"testing"
)

// TestCacheOneEncodePerFrame: three consumers of the same frame at the
// same size get one encode and the same bytes; another size, another
// frame, or the same bytes in another buffer are encoded anew.
func TestCacheOneEncodePerFrame(t *testing.T) {
	var c Cache
	frame := testJPEG(t, 640, 480, image.YCbCrSubsampleRatio420)
	outs := make([][]byte, 3)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			out, err := c.Thumbnail(t.Context(), frame, 96, 80)
			if err != nil {
				t.Error(err)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	if n := c.Encodes(); n != 1 {
		t.Fatalf("%d encodes for three consumers of one frame, want 1", n)
	}
	for _, o := range outs[1:] {
		if !bytes.Equal(o, outs[0]) {
			t.Fatal("consumers got different previews")
		}
	}
	want, err := Default.Thumbnail(nil, frame, 96, 80)
	if err != nil || !bytes.Equal(outs[0], want) {
		t.Fatalf("cached preview differs from a direct one (err %v)", err)
	}
	if _, err := c.Thumbnail(t.Context(), frame, 48, 80); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Thumbnail(t.Context(), bytes.Clone(frame), 96, 80); err != nil {
		t.Fatal(err)
	}
	if n := c.Encodes(); n != 3 {
		t.Errorf("%d encodes after a second size and a copy of the frame, want 3", n)
	}
	// Once more of each: all answered from the cache.
	for _, h := range []int{96, 48} {
		if _, err := c.Thumbnail(t.Context(), frame, h, 80); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Encodes(); n != 3 {
		t.Errorf("%d encodes after repeats, want 3", n)
	}
}

// blockingCodec's Thumbnail waits for release; everything else is Go's.
type blockingCodec struct {
	goCodec
	started chan struct{}
	release chan struct{}
}

func (b blockingCodec) Thumbnail(dst, src []byte, height, quality int) ([]byte, error) {
	b.started <- struct{}{}
	<-b.release
	return append(dst, "preview"...), nil
}

// TestCacheWaiterHonoursContext: a consumer waiting for another's encode
// gives up when its context ends; the encoder's result still arrives and
// is then served from the cache.
func TestCacheWaiterHonoursContext(t *testing.T) {
	codec := blockingCodec{started: make(chan struct{}), release: make(chan struct{})}
	c := Cache{Codec: codec}
	frame := []byte("frame")
	first := make(chan []byte)
	go func() {
		out, _ := c.Thumbnail(context.Background(), frame, 96, 80)
		first <- out
	}()
	<-codec.started
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Thumbnail(ctx, frame, 96, 80); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter: err %v, want context.Canceled", err)
	}
	close(codec.release)
	if out := <-first; string(out) != "preview" {
		t.Fatalf("encoder got %q", out)
	}
	out, err := c.Thumbnail(t.Context(), frame, 96, 80)
	if err != nil || string(out) != "preview" || c.Encodes() != 1 {
		t.Fatalf("after the encode: %q, %v, %d encodes", out, err, c.Encodes())
	}
}

// TestCacheEvicts: past cacheSize distinct requests the oldest is made
// again, so a long stream does not keep every frame alive.
func TestCacheEvicts(t *testing.T) {
	var c Cache
	frame := testJPEG(t, 320, 240, image.YCbCrSubsampleRatio420)
	for h := range cacheSize + 1 {
		if _, err := c.Thumbnail(t.Context(), frame, 40+h, 80); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Thumbnail(t.Context(), frame, 40, 80); err != nil {
		t.Fatal(err)
	}
	if n := c.Encodes(); n != cacheSize+2 {
		t.Errorf("%d encodes, want %d (the first size was evicted)", n, cacheSize+2)
	}
}
