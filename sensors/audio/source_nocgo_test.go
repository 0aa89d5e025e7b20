//go:build !cgo

package audio

import (
	"errors"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/sensors"
)

func TestNotCompiled(t *testing.T) {
	if _, err := New("mic", Config{}, sensors.Env{}); !errors.Is(err, ErrNotCompiled) || !strings.Contains(err.Error(), "not compiled in") {
		t.Fatalf("New = %v", err)
	}
	if _, err := ListCaptureDevices(); !errors.Is(err, ErrNotCompiled) {
		t.Fatalf("ListCaptureDevices = %v", err)
	}
}
