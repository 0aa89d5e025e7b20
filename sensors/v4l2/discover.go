package v4l2

// Device is one V4L2 node as `edge-agent sensors` lists it.
type Device struct {
	Path    string       `json:"path"`
	Card    string       `json:"card,omitempty"`
	BusInfo string       `json:"bus_info,omitempty"`
	Formats []FormatInfo `json:"formats,omitempty"`
	// Error is set for a node that exists but could not be queried (busy,
	// permission denied, or a metadata node that is not a capture device).
	Error string `json:"error,omitempty"`
}

// FormatInfo is one pixel format with the frame sizes the driver lists.
type FormatInfo struct {
	FourCC      string   `json:"fourcc"`
	Description string   `json:"description,omitempty"`
	Sizes       []string `json:"sizes,omitempty"` // "640x480" or a stepwise range
}
