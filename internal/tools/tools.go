//go:build tools

// Package tools pins the design card's libraries in go.mod and go.sum before
// every one of them is imported by agent code, so that parallel work never
// has to edit go.mod. It is never built.
package tools

import (
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/creack/pty"
	_ "github.com/fxamacker/cbor/v2"
	_ "github.com/gen2brain/malgo"
	_ "github.com/gorilla/websocket"
	_ "github.com/pion/interceptor"
	_ "github.com/pion/rtcp"
	_ "github.com/pion/rtp"
	_ "github.com/pion/webrtc/v4"
	_ "github.com/pion/webrtc/v4/pkg/media"
	_ "github.com/pion/webrtc/v4/pkg/media/h264writer"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/schollz/progressbar/v3"
	_ "go.bug.st/serial"
	_ "go.bug.st/serial/enumerator"
	_ "go.uber.org/goleak"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/net/http2"
	_ "golang.org/x/net/http2/h2c"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
)
