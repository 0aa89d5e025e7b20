//go:build !cgo

package audio

// ListCaptureDevices reports that this build has no microphone support.
func ListCaptureDevices() ([]Device, error) {
	return nil, ErrNotCompiled
}
