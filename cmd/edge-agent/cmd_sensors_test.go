package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/sensors/audio"
	"github.com/edge-agent/edge-agent/sensors/iio"
	"github.com/edge-agent/edge-agent/sensors/serial"
	"github.com/edge-agent/edge-agent/sensors/v4l2"
)

// fakeProc is a /proc whose device tree names a Raspberry Pi 4.
func fakeProc(t *testing.T) string {
	t.Helper()
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "device-tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "device-tree", "model"), []byte(pi4Model+"\x00"), 0o444); err != nil {
		t.Fatal(err)
	}
	return proc
}

const pi4Model = "Raspberry Pi 4 Model B Rev 1.4"

// fakeBoard builds a sysfs tree with one accelerometer and a /dev with one
// node named like a camera that is not a V4L2 device (a regular file).
func fakeBoard(t *testing.T) (sys, dev string) {
	t.Helper()
	root := t.TempDir()
	sys, dev = filepath.Join(root, "sys"), filepath.Join(root, "dev")
	d := filepath.Join(sys, "bus", "iio", "devices", "iio:device0")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, v := range map[string]string{"name": "mpu6050", "in_accel_x_raw": "1", "in_accel_y_raw": "2", "in_accel_z_raw": "3",
		"in_accel_scale": "0.000598", "sampling_frequency": "100", "sampling_frequency_available": "50 100 200"} {
		if err := os.WriteFile(filepath.Join(d, n), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "video0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return sys, dev
}

func testDiscoverers(audioErr error) discoverers {
	return discoverers{
		iio: iio.Discover, video: v4l2.Discover,
		audio: func() ([]audio.Device, error) {
			if audioErr != nil {
				return nil, audioErr
			}
			return []audio.Device{{ID: "hw:Device,0", Name: "USB Audio", Card: 1, CardID: "Device", CardName: "USB PnP Sound Device", PCM: 0, Rates: []int{44100, 48000}},
				{ID: "null", Name: "Discard all samples", Card: -1, PCM: -1, Rates: []int{8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000, 352800, 384000}},
				{ID: "hw:Loopback,1", Name: "Loopback PCM", Card: 2, CardID: "Loopback", CardName: "Loopback", PCM: 1, RatesError: "busy (another program, or the running agent, captures from it)"}}, nil
		},
		serial: func() ([]serial.Port, error) {
			return []serial.Port{{Path: "/dev/ttyACM0", Description: "2341:0043 Arduino Uno"}}, nil
		},
	}
}

func TestSensorsJSON(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sys, dev := fakeBoard(t)
	var o, e bytes.Buffer
	if code := runSensors(context.Background(), []string{"-json", "-sys-root", sys, "-dev-root", dev, "-proc-root", fakeProc(t)}, &o, &e, testDiscoverers(nil)); code != 0 {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	var inv inventory
	if err := json.Unmarshal(o.Bytes(), &inv); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, o.String())
	}
	if len(inv.IIO) != 1 || inv.IIO[0].Name != "mpu6050" || inv.IIO[0].SamplingFrequency != 100 || len(inv.IIO[0].Available) != 3 {
		t.Errorf("iio = %+v", inv.IIO)
	}
	if len(inv.Video) != 1 || inv.Video[0].Path != filepath.Join(dev, "video0") || inv.Video[0].Error == "" {
		t.Errorf("video = %+v (a non-V4L2 node must be listed with its error)", inv.Video)
	}
	if len(inv.Audio) != 3 || inv.Audio[0].ID != "hw:Device,0" || inv.Audio[0].Card == nil || *inv.Audio[0].Card != 1 ||
		inv.Audio[0].CardID != "Device" || inv.Audio[0].Device == nil || *inv.Audio[0].Device != 0 ||
		inv.Audio[1].ID != "null" || inv.Audio[1].Card != nil || len(inv.Serial) != 1 {
		t.Errorf("audio %+v serial %+v", inv.Audio, inv.Serial)
	}
	if inv.Model != pi4Model {
		t.Errorf("model %q, want %q", inv.Model, pi4Model)
	}
	if len(inv.Audio) == 3 && (!slices.Equal(inv.Audio[0].Rates, []int{44100, 48000}) || inv.Audio[0].RatesError != "" ||
		inv.Audio[2].Rates != nil || !strings.HasPrefix(inv.Audio[2].RatesError, "busy")) {
		t.Errorf("rates: %+v", inv.Audio)
	}
	for _, key := range []string{`"sampling_frequency"`, `"channels"`, `"path"`, `"model"`, `"rates": [`, `"rates_error"`} {
		if !strings.Contains(o.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestSensorsTable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sys, _ := fakeBoard(t)
	tests := []struct {
		name     string
		dev      string
		audioErr error
		want     []string
	}{
		{name: "full board", dev: "", want: []string{"Board: " + pi4Model + "\n", "IIO devices", "mpu6050", "accel_x", "50 100 200",
			"hw:Device,0    1 [Device] USB PnP Sound Device  USB Audio            44100 48000\n", "RATES Hz", "Discard all samples  8000…384000 (14 rates)",
			"hw:Loopback,1  2 [Loopback] Loopback            Loopback PCM         ? (busy", "/dev/ttyACM0", "(none found)"}},
		{name: "no audio", dev: "", audioErr: errors.New("microphone support not compiled in"), want: []string{"unavailable: microphone support not compiled in", "mpu6050"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o, e bytes.Buffer
			dev := tc.dev
			if dev == "" {
				dev = t.TempDir() // no video nodes
			}
			if code := runSensors(context.Background(), []string{"-sys-root", sys, "-dev-root", dev, "-proc-root", fakeProc(t)}, &o, &e, testDiscoverers(tc.audioErr)); code != 0 {
				t.Fatalf("exit %d: %s", code, e.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(o.String(), w) {
					t.Errorf("table lacks %q:\n%s", w, o.String())
				}
			}
		})
	}
}

// TestSensorsDispatch runs the real command on this machine: whatever it
// has, the output is valid JSON and the exit code 0.
func TestSensorsDispatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var o, e bytes.Buffer
	if code := dispatch(context.Background(), []string{"sensors", "-json", "-sys-root", t.TempDir(), "-dev-root", t.TempDir()}, &o, &e); code != 0 {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	var inv inventory
	if err := json.Unmarshal(o.Bytes(), &inv); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if code := dispatch(context.Background(), []string{"sensors", "extra"}, &o, &e); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}
