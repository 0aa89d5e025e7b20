package console_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/console"
)

// startCapture posts a capture and returns it.
func startCapture(t *testing.T, f *fixture, sensor string, seconds float64) console.Capture {
	t.Helper()
	code, body := f.call("POST", "/api/captures", fmt.Sprintf(`{"sensor":%q,"seconds":%g}`, sensor, seconds), csrf...)
	if code != http.StatusAccepted {
		t.Fatalf("capture %s for %g s: %d %s", sensor, seconds, code, body)
	}
	var c console.Capture
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	if c.State != console.CaptureRunning {
		t.Fatalf("new capture %+v", c)
	}
	return c
}

// finished waits for capture id to end and returns it.
func finished(t *testing.T, f *fixture, id string) console.Capture {
	t.Helper()
	var c console.Capture
	agenttest.Eventually(t, "capture "+id+" to end", func() bool {
		getJSON(t, f, "/api/captures/"+id, &c)
		return c.State != console.CaptureRunning
	})
	return c
}

func download(t *testing.T, f *fixture, c console.Capture) []byte {
	t.Helper()
	resp := f.req("GET", c.URL, "")
	defer resp.Body.Close()
	b := []byte(readAll(t, resp))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ContentType ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), `attachment; filename="`+c.File+`"`) {
		t.Fatalf("download %s: %s %q %q", c.URL, resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	if int64(len(b)) != c.Bytes {
		t.Fatalf("download %s: %d bytes, the capture says %d", c.URL, len(b), c.Bytes)
	}
	return b
}

// TestCaptureEachClass: a capture through the agent's hub writes what
// `edge-agent sample` writes, by the samples' own times: 50 rows in 0.5 s at
// 100 Hz, 8000 frames of 16 kHz audio, 5 stills at 10 fps, one still for
// 0 s, an H.264 stream from a keyframe.
func TestCaptureEachClass(t *testing.T) {
	f := newFixture(t, fixtureOpts{})

	c := finished(t, f, startCapture(t, f, "accel", 0.5).ID)
	csv := string(download(t, f, c))
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if c.State != console.CaptureDone || lines[0] != "timestamp,accX,accY,accZ" || len(lines) != 51 || c.Summary != "50 rows" {
		t.Errorf("motion capture %+v: %d lines, header %q", c, len(lines), lines[0])
	}
	if !strings.HasSuffix(c.File, ".csv") || c.Covered != 0.5 {
		t.Errorf("motion capture %+v", c)
	}

	c = finished(t, f, startCapture(t, f, "mic", 0.5).ID)
	wav := download(t, f, c)
	if string(wav[:4]) != "RIFF" || string(wav[8:12]) != "WAVE" || binary.LittleEndian.Uint32(wav[24:]) != 16000 ||
		binary.LittleEndian.Uint32(wav[40:]) != 8000*2 || len(wav) != 44+8000*2 {
		t.Errorf("audio capture %+v: %d bytes", c, len(wav))
	}

	c = finished(t, f, startCapture(t, f, "cam", 0.5).ID)
	mj := download(t, f, c)
	if c.Frames != 5 || !strings.HasSuffix(c.File, ".mjpeg") || bytes.Count(mj, []byte{0xff, 0xd8, 0xff}) != 5 {
		t.Errorf("still capture %+v: %d JPEG starts", c, bytes.Count(mj, []byte{0xff, 0xd8, 0xff}))
	}
	for n := range c.Frames {
		code, body := f.call("GET", fmt.Sprintf("/api/captures/%s/frames/%d", c.ID, n), "")
		if _, err := jpeg.Decode(strings.NewReader(body)); code != 200 || err != nil {
			t.Errorf("frame %d: %d %v", n, code, err)
		}
	}
	if code, _ := f.call("GET", fmt.Sprintf("/api/captures/%s/frames/%d", c.ID, c.Frames), ""); code != 404 {
		t.Errorf("frame past the end: %d", code)
	}

	c = finished(t, f, startCapture(t, f, "cam", 0).ID)
	if _, err := jpeg.Decode(bytes.NewReader(download(t, f, c))); err != nil || c.Frames != 1 || !strings.HasSuffix(c.File, ".jpg") {
		t.Errorf("one still %+v: %v", c, err)
	}

	c = finished(t, f, startCapture(t, f, "video", 1).ID)
	h264 := download(t, f, c)
	if c.State != console.CaptureDone || !bytes.HasPrefix(h264, []byte{0, 0, 0, 1}) || h264[4]&0x1f != 7 {
		t.Errorf("video capture %+v: starts % x, want a start code and an SPS", c, h264[:min(8, len(h264))])
	}
}

// TestCaptureRules: bad requests are refused with the reason; one capture
// runs at a time; cancelling keeps what was captured; deleting removes the
// file; the last KeepCaptures stay.
func TestCaptureRules(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"sensor":"nope","seconds":1}`, 404},
		{`{"sensor":"accel","seconds":0}`, 400},
		{`{"sensor":"accel","seconds":61}`, 400},
		{`{"sensor":"accel","seconds":-1}`, 400},
		{`not json`, 400},
	} {
		if code, body := f.call("POST", "/api/captures", tc.body, csrf...); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.body, code, body, tc.want)
		}
	}
	long := startCapture(t, f, "accel", 30)
	if code, body := f.call("POST", "/api/captures", `{"sensor":"mic","seconds":1}`, csrf...); code != http.StatusConflict {
		t.Errorf("a second capture: %d %s", code, body)
	}
	if code, _ := f.call("GET", long.URL, ""); code != http.StatusConflict {
		t.Errorf("download of a running capture: %d", code)
	}
	agenttest.Eventually(t, "rows to arrive", func() bool {
		var c console.Capture
		getJSON(t, f, "/api/captures/"+long.ID, &c)
		return c.Covered > 0
	})
	code, body := f.call("POST", "/api/captures/"+long.ID+"/cancel", "", csrf...)
	var c console.Capture
	if err := json.Unmarshal([]byte(body), &c); code != 200 || err != nil || c.State != console.CaptureCancelled || c.Covered == 0 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	if csv := download(t, f, c); !strings.HasPrefix(string(csv), "timestamp,accX") {
		t.Errorf("the cancelled capture lost its rows: %q", csv)
	}

	ids := []string{long.ID}
	for range console.KeepCaptures {
		ids = append(ids, finished(t, f, startCapture(t, f, "cam", 0).ID).ID)
	}
	var list []console.Capture
	getJSON(t, f, "/api/captures", &list)
	if len(list) != console.KeepCaptures || list[0].ID != ids[len(ids)-1] || list[len(list)-1].ID != ids[1] {
		t.Errorf("kept %v, want the last %d of %v, newest first", list, console.KeepCaptures, ids)
	}
	if code, _ := f.call("GET", long.URL, ""); code != 404 {
		t.Errorf("the pruned capture is still served: %d", code)
	}
	dir := filepath.Join(filepath.Dir(f.tokenF), "captures")
	if ents, _ := os.ReadDir(dir); len(ents) != console.KeepCaptures {
		t.Errorf("%d files in the capture directory, want %d", len(ents), console.KeepCaptures)
	}
	if code, _ := f.call("DELETE", "/api/captures/"+ids[1], "", csrf...); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != console.KeepCaptures-1 {
		t.Errorf("%d files after a delete", len(ents))
	}
	if code, _ := f.call("DELETE", "/api/captures/"+ids[1], "", csrf...); code != http.StatusNotFound {
		t.Errorf("delete twice: %d", code)
	}
}

// TestCapturesClearedAtStart: files a previous run left in the capture
// directory are removed (and nothing else there).
func TestCapturesClearedAtStart(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"c1.csv", "c12.mjpeg", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, fixtureOpts{})
	if _, err := console.New(console.Options{Hub: f.hub, Snapshot: f.snapshot, Config: f.config, CaptureDir: dir}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "notes.txt" {
		t.Errorf("left %v, want only notes.txt", ents)
	}
}
