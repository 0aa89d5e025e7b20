package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/agent/capture"
	"github.com/edge-agent/edge-agent/sensors"
)

// newSampleWriter opens path for a capture of the sensor whose Info is
// info, with the rules of `sample` on top of agent/capture's: the classes
// a configured sensor has, a window for all but a still camera (with the
// flag to set in the error), and a still camera's stills in numbered JPEG
// files unless path names an .mjpeg stream. window 0 is one still.
func newSampleWriter(info func() sensors.Info, path string, window time.Duration) (capture.Writer, error) {
	in := info()
	switch in.Class {
	case sensors.Motion, sensors.Audio, sensors.Video:
		if window <= 0 {
			return nil, fmt.Errorf("%s needs -seconds > 0", in.Class)
		}
	case sensors.Still:
	default:
		return nil, fmt.Errorf("sensor %q has class %v, which sample cannot write", in.Name, in.Class)
	}
	stream := window > 0 && strings.EqualFold(filepath.Ext(path), ".mjpeg")
	return capture.New(info, path, capture.Options{Length: window, Numbered: !stream})
}

// defaultExt is the output extension for a sensor class: a still camera's
// is .jpg also for a window, whose stills are numbered files.
func defaultExt(c sensors.Class) string {
	ext, _ := capture.FileKind(c, 0)
	return ext
}
