//go:build linux

package v4l2

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/blackjack/webcam"
)

// Discover lists the video nodes under devRoot ("/dev" in production) with
// their formats and sizes. A node that cannot be opened is listed with its
// error, so the user sees a permission problem instead of an empty list.
// It opens each node briefly, so it must not run while the agent streams.
func Discover(devRoot string) ([]Device, error) {
	paths, err := filepath.Glob(filepath.Join(devRoot, "video*"))
	if err != nil {
		return nil, fmt.Errorf("v4l2 discover: %w", err)
	}
	sort.Slice(paths, func(i, j int) bool { return nodeNumber(paths[i]) < nodeNumber(paths[j]) })
	out := make([]Device, 0, len(paths))
	for _, p := range paths {
		out = append(out, describe(p))
	}
	return out, nil
}

func nodeNumber(p string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "video"))
	if err != nil {
		return 1 << 30
	}
	return n
}

func describe(path string) Device {
	d := Device{Path: path}
	cam, err := webcam.Open(path)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	defer cam.Close()
	d.Card, _ = cam.GetName()
	d.BusInfo, _ = cam.GetBusInfo()
	formats := cam.GetSupportedFormats()
	codes := make([]webcam.PixelFormat, 0, len(formats))
	for pf := range formats {
		codes = append(codes, pf)
	}
	sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
	for _, pf := range codes {
		fi := FormatInfo{FourCC: FourCC(pf).String(), Description: formats[pf]}
		seen := map[string]bool{}
		for _, fs := range cam.GetSupportedFrameSizes(pf) {
			if s := fs.GetString(); !seen[s] {
				seen[s] = true
				fi.Sizes = append(fi.Sizes, s)
			}
		}
		d.Formats = append(d.Formats, fi)
	}
	return d
}
