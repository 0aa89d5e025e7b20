package spool_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/upload/spool"
)

// BenchmarkPutDeliver measures the durable path of one item: Put (temp file,
// fsync, rename, metadata, fsync dir) then delivery to a peer that reads the
// body and acknowledges, then Remove. The fsyncs dominate; on a Pi's SD card
// expect far fewer items/s than here.
func BenchmarkPutDeliver(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"256KiB", 256 << 10}} {
		b.Run(size.name, func(b *testing.B) {
			s, err := spool.Open(b.TempDir(), spool.Options{MaxBytes: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			body := bytes.Repeat([]byte{0x5a}, size.n)
			b.SetBytes(int64(size.n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Put("bench", nil, bytes.NewReader(body)); err != nil {
					b.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			delivered := 0
			_ = s.Deliver(ctx, func(ctx context.Context, it spool.Item, f *os.File) error {
				if _, err := io.Copy(io.Discard, f); err != nil {
					return err
				}
				delivered++
				if delivered == b.N {
					cancel()
				}
				return nil
			}, retry.Policy{})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
