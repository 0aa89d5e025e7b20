package rtm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/internal/httpx"
	"github.com/edge-agent/edge-agent/internal/retry"
)

// restSession is the reply of POST /api/v2/session
// (docs/protocols/webrtc-rtm.md §2.2).
type restSession struct {
	SessionID      string `json:"session_id"`
	WSEndpoint     string `json:"ws_endpoint"`
	ICECredentials struct {
		ICEServers []webrtc.ICEServer `json:"iceServers"`
	} `json:"ice_credentials"`
}

// createSession asks the REST API for a session: its id, short-lived ICE
// servers and the WebSocket endpoint. The token goes in the Authorization
// header only. waits caps a Retry-After (nil: not logged); clk dates it.
//
// ws_endpoint is where the token goes next, so it is checked first
// (httpx.CheckServerURL): wss:// whenever api_url is https, on any host (the
// service names its signalling host, docs/protocols/webrtc-rtm.md §2.2, and
// the token then only travels over TLS verified like api_url's); ws:// only
// when api_url itself is plain http, and then only on api_url's host name.
// On main a ws:// endpoint on another host got the Bearer token in clear
// text, at every retry.
func createSession(ctx context.Context, cfg *Config, tc *tls.Config, waits *retry.PeerWaits, clk clock.Clock) (restSession, error) {
	var out restSession
	u := strings.TrimSuffix(cfg.APIURL, "/") + "/api/v2/session"
	base, err := url.Parse(cfg.APIURL)
	if err != nil {
		return out, retry.Permanent(fmt.Errorf("rtm api_url: %w", err))
	}
	err = postClientID(ctx, tc, "rtm create session", u, cfg.Token, cfg.ClientID, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			return classifyHTTP("rtm create session", resp, nil, waits, clk.Now())
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
			return fmt.Errorf("rtm create session: %w: %v", ErrBadMessage, err)
		}
		if out.WSEndpoint == "" {
			return fmt.Errorf("rtm create session: %w: no ws_endpoint", ErrBadMessage)
		}
		if _, err := httpx.CheckServerURL("ws_endpoint", out.WSEndpoint, base, "wss", "ws"); err != nil {
			return fmt.Errorf("rtm create session: %w: %w", ErrBadMessage, err)
		}
		return nil
	})
	return out, err
}

// postClientID POSTs {"client_id"} to u with bearer in the Authorization
// header (15 s at most) and hands the reply to handle, whose error it
// returns. Its own errors start with op and never hold bearer. These calls
// are one per session set-up, so each gets a transport of its own.
func postClientID(ctx context.Context, tc *tls.Config, op, u, bearer, clientID string, handle func(*http.Response) error) error {
	body, _ := json.Marshal(map[string]string{"client_id": clientID})
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return retry.Permanent(fmt.Errorf("%s: %w", op, err))
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	// The shared policy (internal/httpx): this POST, carrying the Bearer
	// token and client_id, is never redirected.
	client := httpx.NewClient(httpx.NewTransport(tc))
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, redactErr(err, bearer))
	}
	defer resp.Body.Close()
	return handle(resp)
}
