package v4l2

// Device is one V4L2 video capture node as `edge-agent sensors` lists it.
type Device struct {
	Path    string       `json:"path"`
	Card    string       `json:"card,omitempty"`
	Driver  string       `json:"driver,omitempty"` // the kernel driver (uvcvideo, bcm2835-v4l2, vivid)
	BusInfo string       `json:"bus_info,omitempty"`
	Formats []FormatInfo `json:"formats,omitempty"`
	// Error is set for a node that exists but could not be opened or queried
	// (permission denied, not a V4L2 device).
	Error string `json:"error,omitempty"`
}

// FormatInfo is one pixel format with the frame sizes the driver lists.
type FormatInfo struct {
	FourCC      string   `json:"fourcc"`
	Description string   `json:"description,omitempty"`
	Sizes       []string `json:"sizes,omitempty"` // "640x480" or a stepwise range
}
