package audio

import "errors"

// Device is one capture device, as listed by `edge-agent sensors`.
type Device struct {
	// ID is the backend's device identifier (for ALSA e.g. "hw:1,0"); the
	// config's `device` may name either ID or Name.
	ID string
	// Name is the human-readable name the backend reports.
	Name string
	// Default marks the backend's default capture device.
	Default bool
}

// ErrNotCompiled is returned by every microphone entry point in builds
// without cgo: miniaudio is C, so the pure-Go (e.g. ARMv6) binary has no
// microphone support. Such boards can use a `command` sensor running arecord.
var ErrNotCompiled = errors.New("microphone support not compiled in (this build has no cgo); use a command sensor with arecord instead")

// nullDeviceName is what miniaudio's null backend calls its capture device.
// Production rejects it: it "captures" silence without an error, which is
// what a missing libasound silently falls back to.
const nullDeviceName = "NULL Capture Device"
