package main

import (
	"context"
	"fmt"
	"io"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "run: not built yet")
	return 1
}
func cmdCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int { return 1 }
func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) int      { return 1 }
func cmdSim(ctx context.Context, args []string, stdout, stderr io.Writer) int          { return 1 }
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int         { return 1 }
