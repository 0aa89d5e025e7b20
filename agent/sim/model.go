package sim

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/infer/eimfake"
	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/sensors/synthetic"
)

// The demo's scene: the synthetic camera shows a visitor (a white block)
// for DemoVisitorFor at the start of every DemoVisitorEvery.
const (
	DemoVisitorEvery = conf.Duration(20 * time.Second)
	DemoVisitorFor   = conf.Duration(6 * time.Second)
)

// DemoModelName is the demo model's inference[] name, DemoRuleName its
// rule's.
const (
	DemoModelName = "visitor-detector"
	DemoRuleName  = "visitor"
)

// WriteDemoModel writes the demo's model to dir/visitor-detector.eim: a
// copy of program with an eimfake trailer describing a 96×96 RGB image
// classifier with the labels empty and visitor, which answers visitor when
// the mean of its features is above the midpoint between the camera's
// picture without and with the visitor (computed here from the camera's
// own frames, so it follows the picture). It returns the model's path.
func WriteDemoModel(dir, program string, sensors []config.Sensor) (string, error) {
	var cam *synthetic.Config
	for _, s := range sensors {
		if c, ok := s.Block.(*synthetic.Config); ok && s.Name == "cam" {
			cam = c
		}
	}
	if cam == nil {
		return "", fmt.Errorf("demo model: no synthetic camera named cam")
	}
	threshold, err := visitorThreshold(*cam)
	if err != nil {
		return "", fmt.Errorf("demo model: %w", err)
	}
	trailer, err := eimfake.Trailer(&eimfake.Config{
		Project: map[string]any{"id": 1, "owner": "edge-agent demo", "name": "visitor detector", "deploy_version": 1},
		Params: map[string]any{"input_features_count": 96 * 96, "sensor": 3, "frequency": 0, "interval_ms": 1,
			"axis_count": 1, "image_input_width": 96, "image_input_height": 96, "image_input_frames": 1,
			"image_channel_count": 3, "image_resize_mode": "squash", "label_count": 2, "labels": []string{"empty", "visitor"},
			"model_type": "classification", "has_anomaly": 0},
		Split: []float64{threshold},
		Score: 0.92,
	})
	if err != nil {
		return "", fmt.Errorf("demo model: %w", err)
	}
	path := filepath.Join(dir, DemoModelName+".eim")
	if err := copyWith(path, program, trailer); err != nil {
		return "", fmt.Errorf("demo model: %w", err)
	}
	return path, nil
}

// DemoInference is the demo's model on the camera and its rule: when the
// visitor holds for a second, record 10 s of video over RTM, upload the
// frame to Frame.io and tell the camera server's devices.
func DemoInference(model string) ([]config.Inference, []config.Rule) {
	in := []config.Inference{{Name: DemoModelName, Sensor: "cam", Model: model}}
	rule := config.Rule{Name: DemoRuleName, Model: DemoModelName,
		When:        config.When{Label: "visitor", MinScore: 0.8, For: conf.Duration(time.Second)},
		MinInterval: conf.Duration(10 * time.Second),
		Then: []config.Action{
			{Do: config.ActionRecord, For: conf.Duration(10 * time.Second)},
			{Do: config.ActionUploadStill},
			{Do: config.ActionMessage, Msg: "visitor", Params: map[string]any{"where": "demo camera"}},
		}}
	return in, []config.Rule{rule}
}

// visitorThreshold is the midpoint between the mean packed-RGB feature of
// the camera's picture without the visitor and with it. A squash resize
// averages areas, which keeps each channel's mean, and a packed feature
// is linear in the channels, so the full-size frame's mean is the model
// input's mean.
func visitorThreshold(cfg synthetic.Config) (float64, error) {
	cam := synthetic.NewCamera("cam", cfg)
	var with, without float64
	var seen int
	for n := uint64(0); seen != 3; n++ {
		if n > uint64(cfg.VisitorEvery.D().Seconds()*cam.Info().Rate)+1 {
			return 0, fmt.Errorf("the camera never shows both pictures")
		}
		visiting := cam.Visiting(n)
		if (visiting && seen&1 != 0) || (!visiting && seen&2 != 0) {
			continue
		}
		frame, err := cam.Frame(n)
		if err != nil {
			return 0, err
		}
		m, err := meanFeature(frame)
		if err != nil {
			return 0, err
		}
		if visiting {
			with, seen = m, seen|1
		} else {
			without, seen = m, seen|2
		}
	}
	if with <= without {
		return 0, fmt.Errorf("the visitor does not brighten the picture (%.0f <= %.0f)", with, without)
	}
	return (with + without) / 2, nil
}

// meanFeature is the mean of a JPEG's pixels packed as 0xRRGGBB.
func meanFeature(frame []byte) (float64, error) {
	img, err := jpeg.Decode(bytes.NewReader(frame))
	if err != nil {
		return 0, err
	}
	var sum float64
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			sum += float64(r>>8)*65536 + float64(g>>8)*256 + float64(bl>>8)
		}
	}
	return sum / float64(b.Dx()*b.Dy()), nil
}

// copyWith writes program followed by tail to path, executable, replacing
// it whole.
func copyWith(path, program string, tail []byte) error {
	src, err := os.Open(program)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := path + ".tmp"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		_, err = dst.Write(tail)
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
