//go:build vboard

package guest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// inventory is the part of `edge-agent sensors -json` this case reads.
type inventory struct {
	IIO []struct {
		Name     string `json:"name"`
		Buffered bool   `json:"buffered"`
	} `json:"iio"`
	Video []struct {
		Path    string `json:"path"`
		Formats []struct {
			FourCC string   `json:"fourcc"`
			Sizes  []string `json:"sizes"`
		} `json:"formats"`
	} `json:"video"`
	Audio []struct {
		ID string `json:"id"`
	} `json:"audio"`
	Serial []struct {
		Path string `json:"path"`
	} `json:"serial"`
}

// TestBoardSensorsInventory: `edge-agent sensors` on a board with one device
// of every class lists each of them — vivid's capture node and none of its
// output, VBI or metadata nodes, the loopback card's capture devices by ALSA
// name, the USB serial adapter, the HID sensor-hub accelerometer — and its
// table goes to the results (deploy/README.md shows it).
func TestBoardSensorsInventory(t *testing.T) {
	modprobe(t, "vivid", "n_devs=1") // the default node types: capture, output, VBI, radio, SDR, metadata, touch
	modprobe(t, "snd-aloop", "pcm_substreams=1")
	accel := startAccel(t)
	agent := os.Getenv("VBOARD_AGENT_CGO")

	out, err := exec.Command(agent, "sensors", "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("sensors -json: %v\n%s", err, out)
	}
	var inv inventory
	if err := json.Unmarshal(out, &inv); err != nil {
		t.Fatalf("sensors -json is not the documented JSON: %v\n%s", err, out)
	}

	var vivid []string // vivid's nodes by their sysfs name
	names, _ := filepath.Glob("/sys/class/video4linux/video*/name")
	capture := ""
	for _, n := range names {
		b, _ := os.ReadFile(n)
		node := "/dev/" + filepath.Base(filepath.Dir(n))
		if name := strings.TrimSpace(string(b)); strings.HasPrefix(name, "vivid") {
			vivid = append(vivid, node+" "+name)
			if strings.HasSuffix(name, "vid-cap") {
				capture = node
			}
		}
	}
	if capture == "" || len(vivid) < 3 {
		t.Fatalf("vivid did not make its nodes: %v", vivid)
	}
	var listed []string
	for _, v := range inv.Video {
		listed = append(listed, v.Path)
		if v.Path == capture {
			var yuyv bool
			for _, f := range v.Formats {
				yuyv = yuyv || f.FourCC == "YUYV" && len(f.Sizes) > 0
			}
			if !yuyv {
				t.Errorf("%s is listed without YUYV sizes: %+v", capture, v.Formats)
			}
		}
	}
	if !slices.Equal(listed, []string{capture}) {
		t.Errorf("cameras listed %v; want only vivid's capture node %s (vivid's nodes: %v)", listed, capture, vivid)
	}

	var audio []string
	for _, a := range inv.Audio {
		audio = append(audio, a.ID)
	}
	for _, want := range []string{"hw:Loopback,0", "hw:Loopback,1"} {
		if !slices.Contains(audio, want) {
			t.Errorf("capture devices %v lack %s", audio, want)
		}
	}
	var serials []string
	for _, s := range inv.Serial {
		serials = append(serials, s.Path)
	}
	if !slices.Contains(serials, "/dev/ttyUSB0") {
		t.Errorf("serial ports %v lack /dev/ttyUSB0", serials)
	}
	var iios []string
	for _, d := range inv.IIO {
		iios = append(iios, d.Name)
		if d.Name == accel && !d.Buffered {
			t.Errorf("IIO device %s is listed without buffered capture", accel)
		}
	}
	if !slices.Contains(iios, accel) {
		t.Errorf("IIO devices %v lack %s", iios, accel)
	}

	table, err := exec.Command(agent, "sensors").CombinedOutput()
	if err != nil {
		t.Fatalf("sensors: %v\n%s", err, table)
	}
	t.Logf("edge-agent sensors:\n%s", table)
	_ = os.WriteFile(filepath.Join(os.Getenv("VBOARD_SHARE"), "results", "sensors-"+os.Getenv("VBOARD_ARCH")+".txt"), table, 0o644)
}
