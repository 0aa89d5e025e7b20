// Command soakplot draws the CSV written by scripts/soak.sh as a PNG: one
// panel per column (RSS, goroutines, CPU, drops…) against elapsed minutes, so
// growth over an hour is visible at a glance. Pure Go, no plotting library.
//
//	go run ./scripts/soakplot soak.csv soak.png
package main

import (
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: soakplot IN.csv OUT.png")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "soakplot:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(rows) < 2 {
		return fmt.Errorf("%s: no data rows", in)
	}
	head := rows[0]
	cols := make([][]float64, len(head))
	for _, r := range rows[1:] {
		for i := range head {
			v, _ := strconv.ParseFloat(r[i], 64)
			cols[i] = append(cols[i], v)
		}
	}
	const pw, ph, pad = 520, 180, 40
	panels := len(head) - 1 // column 0 is elapsed minutes
	per := 2
	w := per * pw
	h := ((panels + per - 1) / per) * ph
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	for p := 0; p < panels; p++ {
		ox, oy := (p%per)*pw, (p/per)*ph
		plot(img, image.Rect(ox+pad, oy+20, ox+pw-10, oy+ph-pad/2), cols[0], cols[p+1], head[p+1])
	}
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := png.Encode(o, img); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

func plot(img *image.RGBA, r image.Rectangle, xs, ys []float64, title string) {
	minX, maxX := xs[0], xs[len(xs)-1]
	maxY := 0.0 // the y axis starts at 0, so growth is not exaggerated
	for _, y := range ys {
		maxY = max(maxY, y)
	}
	if maxY == 0 {
		maxY = 1
	}
	maxY *= 1.1
	if maxX == minX {
		maxX = minX + 1
	}
	grey := color.RGBA{200, 200, 200, 255}
	for x := r.Min.X; x <= r.Max.X; x++ {
		img.Set(x, r.Max.Y, grey)
		img.Set(x, r.Min.Y, grey)
	}
	for y := r.Min.Y; y <= r.Max.Y; y++ {
		img.Set(r.Min.X, y, grey)
		img.Set(r.Max.X, y, grey)
	}
	px := func(x float64) int { return r.Min.X + int((x-minX)/(maxX-minX)*float64(r.Dx())) }
	py := func(y float64) int { return r.Max.Y - int(y/maxY*float64(r.Dy())) }
	blue := color.RGBA{20, 90, 200, 255}
	for i := 1; i < len(xs); i++ {
		line(img, px(xs[i-1]), py(ys[i-1]), px(xs[i]), py(ys[i]), blue)
	}
	label(img, r.Min.X, r.Min.Y-6, fmt.Sprintf("%s (max %.4g, last %.4g)", title, maxY/1.1, ys[len(ys)-1]))
	label(img, r.Min.X-30, r.Max.Y+4, "0")
	label(img, r.Max.X-60, r.Max.Y+14, fmt.Sprintf("%.0f min", maxX))
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		img.Set(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func label(img *image.RGBA, x, y int, s string) {
	d := font.Drawer{Dst: img, Src: image.Black, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
