package main

import (
	"context"
	"fmt"
	"io"
)

// cmdSensors implements `edge-agent sensors [-json]`: discovery of what the
// board has. Owned by the real-sensors work; not built yet.
func cmdSensors(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "edge-agent sensors: not built yet")
	return 1
}
