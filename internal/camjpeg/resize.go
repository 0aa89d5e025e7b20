package camjpeg

import (
	"image"
	"sync"
)

// scratch is one call's working memory, pooled: the resized planes, the
// row accumulator and the resize taps (cached by size, since a camera's
// frames all have the same).
type scratch struct {
	buf  []byte
	img  image.YCbCr
	acc  []uint32
	taps map[tapsKey]*taps
	out  appendWriter
}

var scratchPool = sync.Pool{New: func() any { return &scratch{taps: map[tapsKey]*taps{}} }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// put returns s to the pool, dropping references to caller memory.
func (s *scratch) put() {
	s.out.b = nil
	if len(s.taps) > 16 {
		clear(s.taps)
	}
	scratchPool.Put(s)
}

// ycbcr returns s's image set up as w×h with chroma ratio r, backed by s.buf.
func (s *scratch) ycbcr(w, h int, r image.YCbCrSubsampleRatio) *image.YCbCr {
	cw, ch := w, h
	switch r {
	case image.YCbCrSubsampleRatio420:
		cw, ch = (w+1)/2, (h+1)/2
	case image.YCbCrSubsampleRatio422:
		cw = (w + 1) / 2
	}
	n := w*h + 2*cw*ch
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	s.img = image.YCbCr{
		Y: b[:w*h], Cb: b[w*h : w*h+cw*ch], Cr: b[w*h+cw*ch:],
		YStride: w, CStride: cw, SubsampleRatio: r, Rect: image.Rect(0, 0, w, h),
	}
	return &s.img
}

// plane is one 8-bit sample plane of w×h samples, rows stride apart. Its
// picture may end inside the last column or row: ew×eh is how far it
// really reaches (a 641-pixel-wide image decoded at 1/4 is 161 samples
// wide, the last one a quarter real; 4:2:0 chroma of an odd width ends
// half-way into its last sample). Zero means w×h.
type plane struct {
	pix          []byte
	stride, w, h int
	ew, eh       float64
}

func (p plane) extent() (float64, float64) {
	ew, eh := p.ew, p.eh
	if ew == 0 {
		ew = float64(p.w)
	}
	if eh == 0 {
		eh = float64(p.h)
	}
	return ew, eh
}

// taps are the weights of an area-average resize along one axis: output i
// averages n[i] inputs from start[i], with weights w[off[i]:] summing to
// 1<<tapBits. Each output sample covers an equal share of the input's
// extent, with the inputs at its edges weighted by how much of them it
// covers (the filter vips calls shrink: a box with fractional edges). An
// output larger than the input takes the nearest input sample.
type taps struct {
	start, n, off []int32
	w             []uint32
}

const tapBits = 12

type tapsKey struct {
	in, out   int
	inX, outX float64
}

// tapsFor maps in samples reaching inX onto out samples reaching outX.
func (s *scratch) tapsFor(in int, inX float64, out int, outX float64) *taps {
	k := tapsKey{in, out, inX, outX}
	if t := s.taps[k]; t != nil {
		return t
	}
	t := &taps{start: make([]int32, out), n: make([]int32, out), off: make([]int32, out)}
	scale := inX / outX
	for i := range out {
		t.off[i] = int32(len(t.w))
		if scale <= 1 {
			t.start[i] = int32(min(int((float64(i)+0.5)*scale), in-1))
			t.n[i] = 1
			t.w = append(t.w, 1<<tapBits)
			continue
		}
		x0 := min(float64(i)*scale, float64(in)-scale)
		x1 := x0 + scale
		first := min(int(x0), in-1)
		last := max(min(int(x1-1e-9), in-1), first)
		t.start[i], t.n[i] = int32(first), int32(last-first+1)
		var sum uint32
		big, bigAt := uint32(0), len(t.w)
		for j := first; j <= last; j++ {
			cover := max(min(x1, float64(j+1))-max(x0, float64(j)), 0)
			wt := uint32(cover/scale*(1<<tapBits) + 0.5)
			if wt > big {
				big, bigAt = wt, len(t.w)
			}
			t.w = append(t.w, wt)
			sum += wt
		}
		// Rounding must not change the total: give the difference to the
		// largest tap, so a flat input stays flat.
		t.w[bigAt] += 1<<tapBits - sum
	}
	s.taps[k] = t
	return t
}

// resize writes src area-averaged to dst's size: columns of the taps'
// input rows are summed into acc, then each output sample sums its taps
// of acc. Both weights are tapBits wide, so a sum stays below 2^32.
func (s *scratch) resize(dst, src plane) {
	sx, sy := src.extent()
	dx, dy := dst.extent()
	if dst.w == src.w && dst.h == src.h && sx == dx && sy == dy {
		for y := range dst.h {
			copy(dst.pix[y*dst.stride:y*dst.stride+dst.w], src.pix[y*src.stride:y*src.stride+src.w])
		}
		return
	}
	tx, ty := s.tapsFor(src.w, sx, dst.w, dx), s.tapsFor(src.h, sy, dst.h, dy)
	if cap(s.acc) < src.w {
		s.acc = make([]uint32, src.w)
	}
	acc := s.acc[:src.w]
	for dy := range dst.h {
		clear(acc)
		wv := ty.w[ty.off[dy] : ty.off[dy]+ty.n[dy]]
		for k, wt := range wv {
			row := src.pix[(int(ty.start[dy])+k)*src.stride:]
			row = row[:len(acc)]
			for x, v := range row {
				acc[x] += wt * uint32(v)
			}
		}
		out := dst.pix[dy*dst.stride : dy*dst.stride+dst.w]
		for dx := range out {
			st := int(tx.start[dx])
			wh := tx.w[tx.off[dx] : tx.off[dx]+tx.n[dx]]
			a := acc[st : st+len(wh)]
			var sum uint32
			for j, wt := range wh {
				sum += wt * (a[j] >> 4)
			}
			out[dx] = uint8((sum + 1<<(2*tapBits-5)) >> (2*tapBits - 4))
		}
	}
}

// shrinkTo resizes the planes of a decoded image (Y, and Cb/Cr unless
// grey) into s's 4:2:0 image of w×h; grey sources get neutral chroma.
func (s *scratch) shrinkTo(y, cb, cr plane, grey bool, w, h int) *image.YCbCr {
	img := s.ycbcr(w, h, image.YCbCrSubsampleRatio420)
	cw, ch := (w+1)/2, (h+1)/2
	s.resize(plane{pix: img.Y, stride: img.YStride, w: w, h: h}, y)
	if grey {
		for i := range img.Cb {
			img.Cb[i], img.Cr[i] = 128, 128
		}
		return img
	}
	c := plane{stride: img.CStride, w: cw, h: ch, ew: float64(w) / 2, eh: float64(h) / 2}
	c.pix = img.Cb
	s.resize(c, cb)
	c.pix = img.Cr
	s.resize(c, cr)
	return img
}

// appendWriter is the io.Writer image/jpeg encodes into: it appends to b,
// and its Flush and WriteByte spare the encoder a bufio.Writer per call.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

func (w *appendWriter) Flush() error { return nil }
