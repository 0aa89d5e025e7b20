package v4l2

import (
	"errors"
	"fmt"
	"strings"
)

// defaultWidth and defaultHeight are the size aimed for when the config leaves
// width/height at 0: small enough for a Pi Zero to move at 15 fps, large
// enough for a useful still.
const defaultWidth, defaultHeight = 640, 480

// autoOrder is what format "auto" tries, best first. H.264 is never chosen
// automatically: it changes the sensor's class from still to video, which the
// links have to know from the config alone.
var autoOrder = []FourCC{FourCCMJPEG, FourCCYUYV}

// Configuration mismatches: no retry can fix them, so Source.Run marks them
// permanent (retry.Permanent) and the hub reports the reason instead of
// reopening the camera with backoff.
var (
	// ErrNoFormat says the device offers none of the formats the config
	// allows, or the driver refused or replaced the one asked for.
	ErrNoFormat = errors.New("no usable pixel format")
	// ErrNoSize says the configured size is larger than anything the camera
	// offers in that format, or the driver settled on a size frames cannot be
	// made from (zero, or an odd YUYV width).
	ErrNoSize = errors.New("no usable frame size")
	// ErrNotCapture says the node is not a single-planar video capture node
	// (a UVC camera's metadata node, an output or codec node, a touch sensor).
	ErrNotCapture = errors.New("not a video capture node")
)

// choose picks the capture mode for cfg among what the device offers: the
// configured pixel format (or the first of autoOrder that is offered and can
// do the size), then the offered size nearest to the configured one (by
// area, then aspect). A configured size that no offered size of the format
// can contain is ErrNoSize (the camera cannot do it at all); one that is
// merely not listed snaps to the nearest listed size. A device that lists no
// sizes for the format gets the requested size and the driver's answer to
// Configure decides.
func choose(cfg Config, offered []Format) (Format, error) {
	var order []FourCC
	if cfg.Format == "auto" || cfg.Format == "" {
		order = autoOrder
	} else {
		fc, ok := fourCCByName[cfg.Format]
		if !ok {
			return Format{}, fmt.Errorf("format %q: %w", cfg.Format, ErrNoFormat)
		}
		order = []FourCC{fc}
	}
	w, h := cfg.Width, cfg.Height
	explicit := w > 0 && h > 0
	if !explicit {
		w, h = defaultWidth, defaultHeight
	}
	var tooSmall []string // formats offered, but not at the configured size
	for _, fc := range order {
		var best *Format
		found, fits := false, false
		var sizes []string
		for i := range offered {
			f := offered[i]
			if f.FourCC != fc {
				continue
			}
			found = true
			if f.Width == 0 || f.Height == 0 {
				fits = true // no size listed: the driver decides
				continue
			}
			sizes = append(sizes, fmt.Sprintf("%dx%d", f.Width, f.Height))
			if f.Width >= w && f.Height >= h {
				fits = true
			}
			if best == nil || sizeDistance(f, w, h) < sizeDistance(*best, w, h) {
				best = &offered[i]
			}
		}
		if !found {
			continue
		}
		if explicit && !fits {
			tooSmall = append(tooSmall, fmt.Sprintf("%s %v", fc, sizes))
			continue
		}
		got := Format{FourCC: fc, Width: w, Height: h, FPS: cfg.FPS}
		if best != nil {
			got.Width, got.Height = best.Width, best.Height
		}
		return got, nil
	}
	if len(tooSmall) > 0 {
		return Format{}, fmt.Errorf("want %s at %dx%d, larger than every size the camera offers (%s): %w",
			cfg.Format, w, h, strings.Join(tooSmall, "; "), ErrNoSize)
	}
	names := make([]string, 0, len(offered))
	seen := map[FourCC]bool{}
	for _, f := range offered {
		if !seen[f.FourCC] {
			seen[f.FourCC] = true
			names = append(names, f.FourCC.String())
		}
	}
	return Format{}, fmt.Errorf("want %s, device offers %v: %w", cfg.Format, names, ErrNoFormat)
}

// sizeDistance orders candidate sizes: exact match first, then the nearest
// pixel count, with a penalty for a different aspect ratio.
func sizeDistance(f Format, w, h int) float64 {
	da := float64(f.Width*f.Height - w*h)
	if da < 0 {
		da = -da
	}
	ar := float64(f.Width)/float64(f.Height) - float64(w)/float64(h)
	if ar < 0 {
		ar = -ar
	}
	return da * (1 + ar)
}
