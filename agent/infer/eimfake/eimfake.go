// Package eimfake is a stand-in for an Edge Impulse .eim model: it speaks
// the model's socket protocol (docs/protocols/eim.md) and answers
// deterministically from its input, so a test can check exactly what the
// runner sent, and `edge-agent demo` can show a model driving a rule
// without a trained model.
//
// Its configuration is appended to the executable itself (Trailer), so a
// copy of it is a complete "model" wherever it lands, also after a download
// under a name nobody chose: the parameters its hello reports, how the mean
// of the features picks the label, and faults to inject (crash, hang,
// garbage, refusals, a slow answer). With Log set it appends every request's
// features to a file, one JSON line each. The tests run it as its own
// program (agent/infer/internal/fakemodel); the demo runs a copy of the
// edge-agent binary with a trailer, which cmd/edge-agent turns into Main
// when it is started under a name ending in ".eim".
package eimfake

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"syscall"
	"time"
)

// Config is the model's behaviour.
type Config struct {
	Project map[string]any `json:"project"`
	Params  map[string]any `json:"model_parameters"`
	// Split holds ascending boundaries: the label is the number of
	// boundaries at or below the features' mean.
	Split []float64 `json:"split"`
	Score float64   `json:"score"` // the chosen label's score (default 0.9)
	Log   string    `json:"log"`
	// Faults, counted in classify requests from 1 (0: never).
	CrashAfter   int  `json:"crash_after"`
	HangAfter    int  `json:"hang_after"`
	GarbageAfter int  `json:"garbage_after"`
	RefuseAfter  int  `json:"refuse_after"`
	DelayMS      int  `json:"delay_ms"`
	FailStart    bool `json:"fail_start"`
	// IgnoreSignals makes the model deaf to SIGINT, SIGTERM and SIGHUP, so
	// that only SIGKILL stops it.
	IgnoreSignals bool `json:"ignore_signals"`
	// Child starts a sleeping child in the model's process group.
	Child bool `json:"child"`
}

// Magic ends the trailer: JSON config, then its length (8 bytes, little
// endian), then Magic.
const Magic = "FAKEEIM1"

// Main runs the model as its own process: args are the command line (the
// socket path is args[1]) and exe the file whose trailer configures it. It
// returns the exit code; a fault it is told to inject may exit at once.
func Main(args []string, exe string) int {
	if len(args) != 2 {
		fmt.Println("usage: MODEL SOCKET")
		return 1
	}
	cfg, err := ReadTrailer(exe)
	if err != nil {
		fmt.Println("ERR:", err)
		return 1
	}
	if cfg.FailStart {
		fmt.Println("ERR: failing at start as configured")
		return 4
	}
	sock := args[1]
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Println("ERR: listen:", err)
		return 1
	}
	if cfg.IgnoreSignals {
		signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	} else {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			s := <-sig
			os.Remove(sock)
			os.Exit(128 + int(s.(syscall.Signal)))
		}()
	}
	if cfg.Child {
		// A helper the model leaves running: it must go with the group.
		c := exec.Command("sleep", "3600")
		if err := c.Start(); err == nil {
			fmt.Println("child", c.Process.Pid)
		}
	}
	fmt.Println("Waiting for connection on", sock)
	conn, err := ln.Accept()
	if err != nil {
		return 1
	}
	serve(conn, cfg)
	return 0
}

// HasTrailer reports whether the file at path ends with a model trailer
// (it reads the last bytes only).
func HasTrailer(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < int64(len(Magic)) {
		return false
	}
	tail := make([]byte, len(Magic))
	if _, err := f.ReadAt(tail, st.Size()-int64(len(Magic))); err != nil {
		return false
	}
	return string(tail) == Magic
}

// Trailer is what Append adds after a program to make it a model: cfg as
// JSON, its length (8 bytes, little endian) and Magic.
func Trailer(cfg *Config) ([]byte, error) {
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("model trailer: %w", err)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	return append(append(js, n[:]...), Magic...), nil
}

// ReadTrailer reads the configuration appended to the file at exe, reading
// only the file's tail (the demo's model is a copy of the whole agent).
func ReadTrailer(exe string) (*Config, error) {
	f, err := os.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var tail [16]byte
	if st.Size() < 16 {
		return nil, errors.New("no configuration trailer")
	}
	if _, err := f.ReadAt(tail[:], st.Size()-16); err != nil {
		return nil, err
	}
	if string(tail[8:]) != Magic {
		return nil, errors.New("no configuration trailer")
	}
	n := binary.LittleEndian.Uint64(tail[:8])
	if n > uint64(st.Size()-16) || n > 1<<20 {
		return nil, errors.New("bad trailer")
	}
	js := make([]byte, n)
	if _, err := f.ReadAt(js, st.Size()-16-int64(n)); err != nil {
		return nil, err
	}
	cfg := &Config{Score: 0.9}
	if err := json.Unmarshal(js, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

type request struct {
	ID                 *int       `json:"id"`
	Hello              *int       `json:"hello"`
	Classify           *[]float64 `json:"classify"`
	ClassifyContinuous *[]float64 `json:"classify_continuous"`
}

func serve(conn net.Conn, cfg *Config) {
	dec := json.NewDecoder(conn)
	initialized := false
	n := 0
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				os.Exit(0)
			}
			write(conn, map[string]any{"error": err.Error()})
			os.Exit(1)
		}
		if req.ID == nil {
			write(conn, map[string]any{"success": false, "error": "Missing 'id' field in message"})
			continue
		}
		id := *req.ID
		switch {
		case req.Hello != nil:
			if initialized {
				write(conn, map[string]any{"id": id, "success": false, "error": "Invalid message 'hello', already initialized"})
				continue
			}
			initialized = true
			write(conn, map[string]any{"id": id, "success": true, "project": cfg.Project, "model_parameters": cfg.Params,
				"inferencing_engine": map[string]any{"engine_type": 2, "properties": []string{}}})
		case !initialized:
			write(conn, map[string]any{"id": id, "success": false, "error": "Invalid message, should initialize first"})
		case req.Classify != nil || req.ClassifyContinuous != nil:
			n++
			continuous := req.ClassifyContinuous != nil
			features := req.Classify
			if continuous {
				features = req.ClassifyContinuous
			}
			switch {
			case cfg.CrashAfter > 0 && n >= cfg.CrashAfter:
				fmt.Println("crashing as configured")
				os.Exit(3)
			case cfg.HangAfter > 0 && n >= cfg.HangAfter:
				for { // until killed
					time.Sleep(time.Hour)
				}
			case cfg.GarbageAfter > 0 && n >= cfg.GarbageAfter:
				conn.Write([]byte("Segmentation fault?\n\x00"))
				continue
			case cfg.RefuseAfter > 0 && n >= cfg.RefuseAfter:
				write(conn, map[string]any{"id": id, "success": false, "error": "Classifying failed, error code was -5"})
				continue
			}
			answer := classify(cfg, id, *features, continuous) // logs the request
			if cfg.DelayMS > 0 {
				time.Sleep(time.Duration(cfg.DelayMS) * time.Millisecond)
			}
			write(conn, answer)
		default:
			write(conn, map[string]any{"id": id, "success": false, "error": "Failed to handle message"})
		}
	}
}

func num(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}

func classify(cfg *Config, id int, fs []float64, continuous bool) map[string]any {
	want := int(num(cfg.Params, "input_features_count"))
	key := "classify"
	if continuous {
		want, key = int(num(cfg.Params, "slice_size")), "classify_continuous"
	}
	if len(fs) != want {
		return map[string]any{"id": id, "success": false,
			"error": fmt.Sprintf("Invalid number of features in '%s', expected %d but got %d", key, want, len(fs))}
	}
	sum, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
	for _, f := range fs {
		sum += f
		lo, hi = math.Min(lo, f), math.Max(hi, f)
	}
	mean := sum / float64(len(fs))
	if cfg.Log != "" {
		line, _ := json.Marshal(map[string]any{"continuous": continuous, "features": fs})
		f, err := os.OpenFile(cfg.Log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			f.Write(append(line, '\n'))
			f.Close()
		}
	}
	var labels []string
	if ls, ok := cfg.Params["labels"].([]any); ok {
		for _, l := range ls {
			s, _ := l.(string)
			labels = append(labels, s)
		}
	}
	idx := sort.Search(len(cfg.Split), func(i int) bool { return cfg.Split[i] > mean })
	result := map[string]any{}
	if len(labels) > 0 {
		idx = min(idx, len(labels)-1)
		switch cfg.Params["model_type"] {
		case "object_detection", "constrained_object_detection":
			result["bounding_boxes"] = []map[string]any{{"label": labels[idx], "value": cfg.Score, "x": 0, "y": 0,
				"width": num(cfg.Params, "image_input_width"), "height": num(cfg.Params, "image_input_height")}}
		default:
			c := map[string]any{}
			for i, l := range labels {
				c[l] = (1 - cfg.Score) / math.Max(1, float64(len(labels)-1))
				if i == idx {
					c[l] = cfg.Score
				}
			}
			result["classification"] = c
		}
	}
	switch int(num(cfg.Params, "has_anomaly")) {
	case 0:
	case 3, 4, 6:
		score := mean / float64(0xffffff)
		result["visual_anomaly_max"] = score
		result["visual_anomaly_mean"] = score / 2
		result["visual_anomaly_grid"] = []map[string]any{{"label": "anomaly", "value": score, "x": 0, "y": 0, "width": 8, "height": 8}}
	default:
		result["anomaly"] = mean
	}
	info, _ := json.Marshal(map[string]any{"n": len(fs), "mean": mean, "min": lo, "max": hi, "continuous": continuous})
	return map[string]any{"id": id, "success": true, "result": result,
		"timing": map[string]any{"dsp": 1, "classification": 2, "anomaly": 0}, "info": string(info)}
}

// write sends one answer as the .eim does: JSON, a newline and a NUL.
func write(conn net.Conn, v any) {
	b, _ := json.Marshal(v)
	conn.Write(append(b, '\n', 0))
}
