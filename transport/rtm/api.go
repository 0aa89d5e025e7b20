package rtm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/edge-agent/edge-agent/internal/retry"
)

// restSession is the reply of POST /api/v2/session (spec §2).
type restSession struct {
	SessionID      string `json:"session_id"`
	WSEndpoint     string `json:"ws_endpoint"`
	ICECredentials struct {
		ICEServers []webrtc.ICEServer `json:"iceServers"`
	} `json:"ice_credentials"`
}

// createSession asks the REST API for a session: its id, short-lived ICE
// servers and the WebSocket endpoint. The token goes in the Authorization
// header only.
func createSession(ctx context.Context, cfg *Config, tc *tls.Config) (restSession, error) {
	var out restSession
	body, _ := json.Marshal(map[string]string{"client_id": cfg.ClientID})
	u := strings.TrimSuffix(cfg.APIURL, "/") + "/api/v2/session"
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return out, retry.Permanent(fmt.Errorf("rtm create session: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return out, fmt.Errorf("rtm create session: %w", redactErr(err, cfg.Token))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return out, classifyHTTP("rtm create session", resp, nil)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return out, fmt.Errorf("rtm create session: %w: %v", ErrBadMessage, err)
	}
	if out.WSEndpoint == "" {
		return out, fmt.Errorf("rtm create session: %w: no ws_endpoint", ErrBadMessage)
	}
	if !strings.HasPrefix(out.WSEndpoint, "ws://") && !strings.HasPrefix(out.WSEndpoint, "wss://") {
		return out, fmt.Errorf("rtm create session: %w: ws_endpoint scheme", ErrBadMessage)
	}
	return out, nil
}
