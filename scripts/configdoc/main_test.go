package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestConfigDocIsCurrent fails when docs/CONFIG.md differs from what the code
// generates; regenerate with `go run ./scripts/configdoc > docs/CONFIG.md`.
func TestConfigDocIsCurrent(t *testing.T) {
	var buf bytes.Buffer
	if err := write(&buf, repoRoot()); err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, buf.Bytes()) {
		t.Error("docs/CONFIG.md is stale: run go run ./scripts/configdoc > docs/CONFIG.md")
	}
}
