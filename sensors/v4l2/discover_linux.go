//go:build linux

package v4l2

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/edge-agent/edge-agent/sensors/v4l2/videodev"
)

// Discover lists the video capture nodes under devRoot ("/dev" in
// production) with their formats and sizes. Nodes that are V4L2 devices but
// not single-planar video capture (a UVC camera's metadata node, output,
// codec and touch nodes) are left out: they cannot be a camera sensor. A
// node that cannot be opened or queried is listed with its error, so the
// user sees a permission problem instead of an empty list.
// It opens each node briefly and never streams, so it may run while the
// agent streams from one of them.
func Discover(devRoot string) ([]Device, error) {
	paths, err := filepath.Glob(filepath.Join(devRoot, "video*"))
	if err != nil {
		return nil, fmt.Errorf("v4l2 discover: %w", err)
	}
	sort.Slice(paths, func(i, j int) bool { return nodeNumber(paths[i]) < nodeNumber(paths[j]) })
	out := make([]Device, 0, len(paths))
	for _, p := range paths {
		if d, ok := describe(p); ok {
			out = append(out, d)
		}
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

// describe queries one node; ok is false for a V4L2 node that is not a
// video capture node.
func describe(path string) (d Device, ok bool) {
	d = Device{Path: path}
	vd, err := videodev.Open(path)
	if err != nil {
		d.Error = err.Error()
		return d, true
	}
	defer vd.Close()
	c, err := vd.QueryCap()
	if err != nil {
		d.Error = err.Error()
		return d, true
	}
	if !c.IsVideoCapture() {
		return d, false
	}
	d.Card, d.Driver, d.BusInfo = c.Card, c.Driver, c.BusInfo
	descs, err := vd.EnumFormats()
	if err != nil {
		d.Error = err.Error()
		return d, true
	}
	sort.Slice(descs, func(i, j int) bool { return descs[i].PixelFormat < descs[j].PixelFormat })
	for _, fd := range descs {
		fi := FormatInfo{FourCC: FourCC(fd.PixelFormat).String(), Description: fd.Description}
		sizes, err := vd.EnumFrameSizes(fd.PixelFormat)
		if err != nil {
			d.Error = err.Error()
			return d, true
		}
		seen := map[string]bool{}
		for _, fs := range sizes {
			if s := fs.String(); !seen[s] {
				seen[s] = true
				fi.Sizes = append(fi.Sizes, s)
			}
		}
		d.Formats = append(d.Formats, fi)
	}
	return d, true
}
