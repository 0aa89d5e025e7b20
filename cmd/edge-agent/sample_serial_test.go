package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/sensors/serial/serialtest"
)

// ptyBoard plays a CSV board on the master side of a pty and returns the
// slave's path; the board stops at test cleanup.
func ptyBoard(t *testing.T, rate float64) string {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skip("no pty available:", err)
	}
	name := slave.Name()
	_ = slave.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = (&serialtest.Board{Rate: rate, Header: true}).Play(ctx, master)
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); _ = master.Close() })
	return name
}

// TestSampleSerialHeaderNamesDetectedAxes is defect 4 of issue 12: a serial
// sensor without configured axes detects them from its first lines, and the
// CSV header must name them (it used to be written before detection, with
// no axis columns, so the file was not even valid CSV).
func TestSampleSerialHeaderNamesDetectedAxes(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // after the board stops
	port := ptyBoard(t, 100)
	cfg := writeConfig(t, "  - name: board\n    kind: serial\n    serial: { port: "+strconv.Quote(port)+" }\n")
	out := filepath.Join(t.TempDir(), "board.csv")
	code, stdout, stderr := runSample(t, context.Background(), "-config", cfg, "-sensor", "board", "-seconds", "0.3", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	rows := readCSV(t, out) // fails on rows longer than the header
	if got, want := strings.Join(rows[0], ","), "timestamp,axis0,axis1,axis2"; got != want {
		t.Fatalf("header %q, want %q", got, want)
	}
	if len(rows) < 10 {
		t.Fatalf("%d rows in 0.3 s at 100 Hz", len(rows)-1)
	}
	for _, r := range rows[1:] {
		if _, err := strconv.ParseUint(r[3], 10, 64); err != nil {
			t.Fatalf("row %v: the third axis is the board's counter", r)
		}
	}
}

// TestSampleCSVHeaderWithoutRows: a capture that got no row (here the
// sensor never delivers) still leaves a CSV file with its header.
func TestSampleCSVHeaderWithoutRows(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := writeConfig(t, "  - name: board\n    kind: serial\n    serial: { port: /nonexistent/ttyACM9, axes: [x, y] }\n")
	out := filepath.Join(t.TempDir(), "board.csv")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // interrupted before anything arrives
	code, _, stderr := runSample(t, ctx, "-config", cfg, "-sensor", "board", "-seconds", "1", "-o", out)
	if code != sampleInterrupted {
		t.Fatalf("exit %d, want %d; stderr: %s", code, sampleInterrupted, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "timestamp,x,y\n" {
		t.Fatalf("file %q, want only the header", b)
	}
}

// TestSampleFailsAtOnceOnPermanentError: a serial port path that is not a
// tty can never work; sample stops with the reason instead of retrying until
// its time limit (here 1.5 × 60 s + 10 s, far beyond the test's context).
func TestSampleFailsAtOnceOnPermanentError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := writeConfig(t, "  - name: board\n    kind: serial\n    serial: { port: "+strconv.Quote(t.TempDir())+" }\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, _, stderr := runSample(t, ctx, "-config", cfg, "-sensor", "board", "-seconds", "60", "-o", filepath.Join(t.TempDir(), "b.csv"))
	if code != sampleFailed || !strings.Contains(stderr, "a directory, not a serial port") {
		t.Fatalf("exit %d, want %d with the reason; stderr: %s", code, sampleFailed, stderr)
	}
}
