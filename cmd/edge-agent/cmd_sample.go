package main

import (
	"context"
	"fmt"
	"io"
)

// cmdSample implements `edge-agent sample -sensor NAME -seconds N`. Owned by
// the real-sensors work; not built yet.
func cmdSample(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "edge-agent sample: not built yet")
	return 1
}
