package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/edge-agent/edge-agent/internal/identity"
)

// cmdSensors implements `edge-agent sensors [-json]`: it names the board (its
// device-tree model) and lists what it has (IIO devices with channels and
// rates, V4L2 nodes with formats and sizes, ALSA capture devices with the
// rates they offer, serial ports) so the user can write the sensors: section
// of the config. A subsystem that cannot be queried is
// reported in its section; the command still succeeds.
func cmdSensors(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runSensors(ctx, args, stdout, stderr, realDiscoverers())
}

func runSensors(ctx context.Context, args []string, stdout, stderr io.Writer, d discoverers) int {
	fs := flag.NewFlagSet("sensors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	sysRoot := fs.String("sys-root", "/sys", "root of sysfs (for tests and containers)")
	devRoot := fs.String("dev-root", "/dev", "root of device nodes (for tests and containers)")
	procRoot := fs.String("proc-root", "/proc", "root of procfs, for the board model (for tests and containers)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: edge-agent sensors [-json]")
		return 2
	}
	if ctx.Err() != nil {
		return 1
	}
	inv := takeInventory(d, *sysRoot, *devRoot)
	inv.Model = identity.Model(*procRoot)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(inv); err != nil {
			fmt.Fprintf(stderr, "sensors: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "Board: %s\n\n", boardModel(*procRoot))
	printInventory(stdout, inv)
	return 0
}

func printInventory(w io.Writer, inv inventory) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	section := func(title string, n int, errText string, header string) bool {
		fmt.Fprintf(tw, "%s\n", title)
		switch {
		case errText != "":
			fmt.Fprintf(tw, "  unavailable: %s\n\n", errText)
			return false
		case n == 0:
			fmt.Fprintf(tw, "  (none found)\n\n")
			return false
		}
		fmt.Fprintf(tw, "  %s\n", header)
		return true
	}
	if section("IIO devices (kind: iio)", len(inv.IIO), inv.IIOError, "NAME\tDEVICE\tCHANNELS\tRATE Hz\tAVAILABLE Hz\tBUFFERED") {
		for _, d := range inv.IIO {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%v\n", d.Name, baseOr(d.Dir), strings.Join(d.Channels, ","),
				strconv.FormatFloat(d.SamplingFrequency, 'g', -1, 64), formatRates(d.Available), d.Buffered)
		}
		fmt.Fprintln(tw)
	}
	if section("V4L2 devices (kind: v4l2)", len(inv.Video), inv.VideoError, "PATH\tCARD\tFORMATS") {
		for _, d := range inv.Video {
			if d.Error != "" {
				fmt.Fprintf(tw, "  %s\t-\terror: %s\n", d.Path, d.Error)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Path, d.Card, formatFormats(d.Formats))
		}
		fmt.Fprintln(tw)
	}
	if section("ALSA capture devices (kind: microphone; device: default is ALSA's default PCM)", len(inv.Audio), inv.AudioError, "DEVICE\tCARD\tNAME\tRATES Hz") {
		for _, d := range inv.Audio {
			card := "-"
			if d.Card != nil {
				card = fmt.Sprintf("%d [%s] %s", *d.Card, d.CardID, d.CardName)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.ID, card, d.Name, formatAudioRates(d.Rates, d.RatesError))
		}
		fmt.Fprintln(tw)
	}
	if section("Serial ports (kind: serial)", len(inv.Serial), inv.SerialError, "PATH\tDESCRIPTION") {
		for _, p := range inv.Serial {
			fmt.Fprintf(tw, "  %s\t%s\n", p.Path, p.Description)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
