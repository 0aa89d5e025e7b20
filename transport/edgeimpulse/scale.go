package edgeimpulse

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
)

// scaleJPEG decodes a JPEG, shrinks it to height pixels high (aspect kept)
// with a box filter, and re-encodes it. A frame already that small is
// returned unchanged. golang.org/x/image/draw is not a dependency; a box
// average is all a 96 px preview needs.
func scaleJPEG(data []byte, height int) ([]byte, error) {
	src, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("scale snapshot: %w", err)
	}
	b := src.Bounds()
	if b.Dy() <= height {
		return data, nil
	}
	width := max(1, (b.Dx()*height+b.Dy()/2)/b.Dy())
	dst := boxScale(src, width, height)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, fmt.Errorf("scale snapshot: %w", err)
	}
	return out.Bytes(), nil
}

// boxScale averages each destination pixel's source rectangle. YCbCr images
// (what image/jpeg decodes to) are read from their planes directly.
func boxScale(src image.Image, w, h int) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	ycc, isYCC := src.(*image.YCbCr)
	for dy := 0; dy < h; dy++ {
		y0 := b.Min.Y + dy*b.Dy()/h
		y1 := max(b.Min.Y+(dy+1)*b.Dy()/h, y0+1)
		for dx := 0; dx < w; dx++ {
			x0 := b.Min.X + dx*b.Dx()/w
			x1 := max(b.Min.X+(dx+1)*b.Dx()/w, x0+1)
			var s0, s1, s2, n uint32
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					if isYCC {
						s0 += uint32(ycc.Y[ycc.YOffset(x, y)])
						ci := ycc.COffset(x, y)
						s1 += uint32(ycc.Cb[ci])
						s2 += uint32(ycc.Cr[ci])
					} else {
						r, g, bl, _ := src.At(x, y).RGBA()
						s0 += r >> 8
						s1 += g >> 8
						s2 += bl >> 8
					}
					n++
				}
			}
			c := color.RGBA{uint8(s0 / n), uint8(s1 / n), uint8(s2 / n), 255}
			if isYCC {
				c.R, c.G, c.B = color.YCbCrToRGB(c.R, c.G, c.B)
			}
			dst.SetRGBA(dx, dy, c)
		}
	}
	return dst
}
