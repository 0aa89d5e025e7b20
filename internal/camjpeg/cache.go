package camjpeg

import (
	"context"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Thumbnailer makes previews of camera frames. The sensor hub's
// subscriptions implement it with one Cache per sensor, so links that want
// the same frame at the same size share one encode; a link whose
// subscription does not implement it calls Thumbnail itself.
type Thumbnailer interface {
	// Thumbnail returns frame shrunk to height at quality (see
	// Codec.Thumbnail). The result may be shared: callers must not modify
	// it.
	Thumbnail(ctx context.Context, frame []byte, height, quality int) ([]byte, error)
}

// cacheSize is how many recent previews a Cache keeps: enough for a few
// sizes of the current frame and the one before it.
const cacheSize = 4

// Cache encodes each distinct (frame, height, quality) once, however many
// callers ask for it. A frame is identified by its bytes' address and
// length: the hub hands the same sample to every subscriber, and an entry
// holds its frame, so no other frame can take that address while the
// entry lives. Producers must therefore not reuse a sample's buffer (the
// sensors.Sample contract already makes samples read-only once sent).
//
// Callers asking for a preview that is being made wait for it (or for
// their context); the others make theirs concurrently. The zero Cache is
// ready to use (Default codec); it is safe for concurrent use.
type Cache struct {
	// Codec is the codec previews are made with; nil means Default.
	Codec Codec

	mu      sync.Mutex
	ring    [cacheSize]*cacheEntry
	next    int
	encodes atomic.Uint64
}

type cacheKey struct {
	data            *byte
	n               int
	height, quality int
}

type cacheEntry struct {
	key   cacheKey
	frame []byte        // keeps the frame, and so its address, alive
	done  chan struct{} // closed when out and err are set
	out   []byte
	err   error
}

// Thumbnail returns the preview of frame from the cache, making it on the
// first request.
func (c *Cache) Thumbnail(ctx context.Context, frame []byte, height, quality int) ([]byte, error) {
	k := cacheKey{unsafe.SliceData(frame), len(frame), height, quality}
	c.mu.Lock()
	for _, e := range c.ring {
		if e != nil && e.key == k {
			c.mu.Unlock()
			select {
			case <-e.done:
				return e.out, e.err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	e := &cacheEntry{key: k, frame: frame, done: make(chan struct{})}
	c.ring[c.next] = e
	c.next = (c.next + 1) % cacheSize
	c.mu.Unlock()

	codec := c.Codec
	if codec == nil {
		codec = Default
	}
	c.encodes.Add(1)
	e.out, e.err = codec.Thumbnail(nil, frame, height, quality)
	close(e.done)
	return e.out, e.err
}

// Encodes counts the previews the cache has made (requests it could not
// answer from an earlier one).
func (c *Cache) Encodes() uint64 { return c.encodes.Load() }
