package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/agent/hub"
	"github.com/edge-agent/edge-agent/agent/infer"
	"github.com/edge-agent/edge-agent/sensors"
)

// Exit codes of `edge-agent infer` besides exitOK (also for a run ended by
// SIGINT or -n).
const (
	inferFailed = 1
	inferUsage  = 2
)

// cmdInfer implements `edge-agent infer -model FILE -sensor NAME`: it runs
// one Edge Impulse model on one configured sensor, as the daemon would
// (agent/infer), and prints every result until SIGINT, or -n results. The
// model's start or its failure ends the command with the reason: the
// daemon would retry, a person at a terminal wants to know.
func cmdInfer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("infer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "the .eim model file (required)")
	name := fs.String("sensor", "", "name of the configured sensor to classify (required)")
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	count := fs.Int("n", 0, "stop after this many results (0: until interrupted)")
	asJSON := fs.Bool("json", false, "one JSON object per result instead of a line of text")
	interval := fs.Duration("interval", 0, "stride of a sliding window (motion, audio outside continuous mode); 0: a quarter window")
	timeout := fs.Duration("timeout", 5*time.Second, "bound of one classification")
	sysRoot := fs.String("sys-root", "/sys", "root of sysfs (for tests and containers)")
	devRoot := fs.String("dev-root", "/dev", "root of device nodes (for tests and containers)")
	if err := fs.Parse(args); err != nil {
		return inferUsage
	}
	if *model == "" || *name == "" || fs.NArg() > 0 || *count < 0 {
		fmt.Fprintln(stderr, "usage: edge-agent infer -model FILE -sensor NAME [-config FILE] [-n N] [-json]")
		return inferUsage
	}
	src, log, ok := configuredSource(stderr, "infer", *cfgPath, *name, *sysRoot, *devRoot)
	if !ok {
		return inferFailed
	}
	models, err := infer.NewModels(infer.ModelsOptions{Path: *model, Logger: log})
	if err == nil {
		_, _, err = models.Current() // a missing file now, not a wait for one
	}
	if err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return inferFailed
	}
	err = runInfer(ctx, src, models, inferOptions{interval: *interval, timeout: *timeout, count: *count,
		json: *asJSON, log: log, out: stdout, info: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return inferFailed
	}
	return exitOK
}

type inferOptions struct {
	interval, timeout time.Duration
	count             int
	json              bool
	log               *slog.Logger
	out, info         io.Writer
}

// runInfer runs the model on src through a private hub until ctx ends or
// the count is reached; the stream runs on this goroutine's watch, not
// under the hub's restarts, so its first failure is the command's.
func runInfer(ctx context.Context, src sensors.Source, models *infer.Models, o inferOptions) error {
	h := hub.New(hub.Options{Logger: o.log})
	defer h.Close()
	ff := &failFast{Source: src, perm: make(chan error, 1)}
	if err := h.Add(ff); err != nil {
		return err
	}
	sensor := src.Info().Name
	st := infer.NewStream(h, models, infer.StreamOptions{Name: "infer", Sensor: sensor, Interval: o.interval,
		Timeout: o.timeout, Logger: o.log})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan sensors.Sample, 16)
	errc := make(chan error, 1)
	go func() { errc <- st.Run(ctx, out) }() // ends with ctx; waited for below
	defer func() {
		cancel()
		<-errc
	}()
	announced := false
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-ff.perm:
			return fmt.Errorf("sensor %s: %w", sensor, err)
		case err := <-errc:
			errc <- err // for the deferred wait
			if err == nil {
				return nil
			}
			return err
		case smp := <-out:
			if !announced {
				announced = true
				describeModel(o.info, st, sensor)
			}
			if err := printResult(o.out, smp, st.Info().Axes, o.json); err != nil {
				return err
			}
			if n++; o.count > 0 && n >= o.count {
				return nil
			}
		}
	}
}

// describeModel says on stderr what runs, once the first result came.
func describeModel(w io.Writer, st *infer.Stream, sensor string) {
	s := st.Status()
	if s.Model == nil {
		return
	}
	m := s.Model
	fmt.Fprintf(w, "model %s / %s v%d: %s, %s input, labels %s; reading %s\n", m.Project.Owner, m.Project.Name,
		m.Project.DeployVersion, m.Kind(), m.SensorName(), strings.Join(m.Params.Labels, ", "), sensor)
}

// resultLine is one result in -json.
type resultLine struct {
	Time   time.Time          `json:"time"`
	Scores map[string]float64 `json:"scores"`
	Answer json.RawMessage    `json:"answer"`
}

// printResult writes one result: the time, the best label and its score,
// the other scores, boxes or an anomaly score, and the model's timing.
func printResult(w io.Writer, smp sensors.Sample, axes []string, asJSON bool) error {
	if asJSON {
		l := resultLine{Time: smp.Time, Scores: map[string]float64{}, Answer: smp.Data}
		for i, a := range axes {
			if i < len(smp.Values) {
				l.Scores[a] = smp.Values[i]
			}
		}
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var doc struct {
		Result infer.Result `json:"result"`
		Timing infer.Timing `json:"timing"`
	}
	if err := json.Unmarshal(smp.Data, &doc); err != nil {
		return errors.New("a result that is not JSON")
	}
	var b strings.Builder
	b.WriteString(smp.Time.Format("15:04:05.000"))
	type scored struct {
		label string
		score float64
	}
	var scores []scored
	anomaly := ""
	for i, a := range axes {
		if i >= len(smp.Values) {
			break
		}
		if a == "anomaly" && i == len(axes)-1 {
			anomaly = fmt.Sprintf("  anomaly %.3f", smp.Values[i])
			continue
		}
		scores = append(scores, scored{a, smp.Values[i]})
	}
	sort.SliceStable(scores, func(i, j int) bool { return scores[i].score > scores[j].score })
	switch {
	case doc.Result.BoundingBoxes != nil:
		if len(doc.Result.BoundingBoxes) == 0 {
			b.WriteString("  nothing detected")
		}
		for _, bx := range doc.Result.BoundingBoxes {
			fmt.Fprintf(&b, "  %s %.2f at (%.0f,%.0f %.0f×%.0f)", bx.Label, bx.Value, bx.X, bx.Y, bx.Width, bx.Height)
		}
	case len(scores) > 0:
		fmt.Fprintf(&b, "  %s %.2f", scores[0].label, scores[0].score)
		if len(scores) > 1 {
			var rest []string
			for _, s := range scores[1:] {
				rest = append(rest, fmt.Sprintf("%s %.2f", s.label, s.score))
			}
			fmt.Fprintf(&b, "  (%s)", strings.Join(rest, ", "))
		}
	}
	b.WriteString(anomaly)
	t := doc.Timing
	fmt.Fprintf(&b, "  dsp %g ms, classification %g ms", t.DSP, t.Classification)
	if t.Anomaly > 0 {
		fmt.Fprintf(&b, ", anomaly %g ms", t.Anomaly)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
