package main

import (
	"context"
	"fmt"
	"io"
)

// cmdPair implements `edge-agent pair`: Frame.io device-code pairing. Owned by
// the Frame.io link work; not built yet.
func cmdPair(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "edge-agent pair: not built yet")
	return 1
}
