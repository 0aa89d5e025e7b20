package frameio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// deviceCode is the answer to POST /v2/auth/device/code
// (docs/protocols/frameio-c2c.md §2.2).
type deviceCode struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
	Name                    string `json:"name"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
}

// tokenResponse is the answer of POST /v2/auth/token
// (docs/protocols/frameio-c2c.md §2.3, §2.4).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

// Identity is the part of GET /v2/devices/me the link uses
// (docs/protocols/frameio-c2c.md §3.1).
type Identity struct {
	ID       string `json:"id"`
	DeviceID string `json:"device_id"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	Project  struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"project"`
	ProjectID     string `json:"project_id"`
	Authorization struct {
		ExpiresAt       *time.Time `json:"expires_at"`
		ProjectDeviceID string     `json:"project_device_id"`
		Creator         struct {
			Name string `json:"name"`
		} `json:"creator"`
	} `json:"authorization"`
}

// topics lists the channel topics to try in order
// (docs/protocols/frameio-c2c.md §4.3: the top-level id first; the join reply
// settles which one Frame.io uses).
func (id *Identity) topics() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range []string{id.ID, id.Authorization.ProjectDeviceID, id.DeviceID} {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, "devices:"+s)
		}
	}
	return out
}

func (a *api) requestCode(ctx context.Context, clientID, secret string) (*deviceCode, error) {
	body, ct, err := form([][2]string{{"client_id", clientID}, {"client_secret", secret}, {"scope", "asset_create offline"}})
	if err != nil {
		return nil, fmt.Errorf("device code: %w", err)
	}
	var dc deviceCode
	if err := a.do(ctx, "device code", http.MethodPost, "/v2/auth/device/code", "", body, ct, &dc); err != nil {
		return nil, err
	}
	if dc.DeviceCode == "" || dc.UserCode == "" {
		return nil, errors.New("device code: response without device_code or user_code")
	}
	return &dc, nil
}

func (a *api) token(ctx context.Context, op string, fields [][2]string) (*tokenResponse, error) {
	body, ct, err := form(fields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var tr tokenResponse
	if err := a.do(ctx, op, http.MethodPost, "/v2/auth/token", "", body, ct, &tr); err != nil {
		return nil, err
	}
	if tr.AccessToken == "" {
		return nil, fmt.Errorf("%s: response without access_token", op)
	}
	return &tr, nil
}

func (a *api) pollToken(ctx context.Context, clientID, secret, deviceCode string) (*tokenResponse, error) {
	return a.token(ctx, "token", [][2]string{{"client_id", clientID}, {"client_secret", secret},
		{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"}, {"device_code", deviceCode}})
}

func (a *api) refresh(ctx context.Context, clientID, secret, refreshToken string) (*tokenResponse, error) {
	return a.token(ctx, "refresh token", [][2]string{{"client_id", clientID}, {"client_secret", secret},
		{"grant_type", "refresh_token"}, {"refresh_token", refreshToken}})
}

// revoke deauthorizes the device (docs/protocols/frameio-c2c.md §2.5: the
// refresh token is sent).
func (a *api) revoke(ctx context.Context, clientID, secret, token string) error {
	body, ct, err := form([][2]string{{"client_id", clientID}, {"client_secret", secret}, {"token", token}})
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	return a.do(ctx, "revoke", http.MethodPost, "/v2/auth/revoke", "", body, ct, nil)
}

func (a *api) me(ctx context.Context, access string) (*Identity, error) {
	var id Identity
	if err := a.do(ctx, "devices/me", http.MethodGet, "/v2/devices/me", access, nil, "", &id); err != nil {
		return nil, err
	}
	if id.ID == "" && id.DeviceID == "" {
		return nil, errors.New("devices/me: response without id")
	}
	return &id, nil
}
