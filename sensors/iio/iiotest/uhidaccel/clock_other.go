//go:build !linux

package uhidaccel

// monotonicNow has no kernel clock to match off Linux (uhid is Linux only):
// reports carry no timestamp.
func monotonicNow() int64 { return 0 }
