package conf_test

import (
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/conf"
)

// TestTrustSocketTLS: a ws:// socket next to an https API sent the link's
// credential in clear text without a word. It is refused when the socket is
// on another host, warned on the API's host, and left alone on loopback or
// when nothing next to it uses TLS.
func TestTrustSocketTLS(t *testing.T) {
	tests := []struct {
		name, socket, api string
		want              string // "", "warn" or "error"
	}{
		{"wss with https", "wss://api.example.com/ws", "https://api.example.com", ""},
		{"wss elsewhere", "wss://ws.example.com/ws", "https://api.example.com", ""},
		{"ws with http (tests, LAN)", "ws://10.0.0.5:8080/ws", "http://10.0.0.5:8080", ""},
		{"ws with http elsewhere", "ws://10.0.0.6/ws", "http://10.0.0.5", ""},
		{"ws on loopback", "ws://127.0.0.1:9000/ws", "https://api.example.com", ""},
		{"ws on localhost", "ws://localhost:9000/ws", "https://api.example.com", ""},
		{"ws on ::1", "ws://[::1]:9000/ws", "https://api.example.com", ""},
		{"ws same host", "ws://api.example.com/ws", "https://api.example.com", "warn"},
		{"ws same host, other port", "ws://API.example.com:8080/ws", "https://api.example.com:8443", "warn"},
		{"ws other host", "ws://ws.example.com/ws", "https://api.example.com", "error"},
		{"ws other IP", "ws://10.0.0.6/ws", "https://10.0.0.5", "error"},
		{"api empty", "ws://ws.example.com/ws", "", ""},
		{"socket unparsable", "ws://[bad/ws", "https://api.example.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := conf.NewValidator().At("links[0].x")
			v.SocketTLS("socket_url", tc.socket, "api_url", tc.api, "the token")
			got := ""
			var msgs []conf.Problem
			switch {
			case len(v.Problems()) > 0:
				got, msgs = "error", v.Problems()
			case len(v.Warnings()) > 0:
				got, msgs = "warn", v.Warnings()
			}
			if got != tc.want || len(v.Problems())+len(v.Warnings()) > 1 {
				t.Fatalf("problems %v, warnings %v; want %q", v.Problems(), v.Warnings(), tc.want)
			}
			for _, m := range msgs {
				if m.Path != "links[0].x.socket_url" || !strings.Contains(m.Msg, "the token in clear text") {
					t.Errorf("%s: %s: want the socket field and what goes in clear text", m.Path, m.Msg)
				}
			}
		})
	}
}
