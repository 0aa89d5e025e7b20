package rtmtest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// TokenPath is the fake's token endpoint. It stands for our backend
// (docs/protocols/webrtc-rtm.md §2.1: the master key never goes on a device;
// the backend mints the token with POST /auth_v2/client and the device
// fetches it over its own authenticated channel): POST {"client_id"} with
// Authorization: Bearer <device key> → 201 {"auth_token": JWT}.
const TokenPath = "/device/rtm-token"

// tokenClaims are the minted JWT's claims. Times are NumericDate with
// fractions, so that sub-second lifetimes in tests are exact.
type tokenClaims struct {
	ClientID string  `json:"client_id"`
	APIID    string  `json:"api_id"`
	IAT      float64 `json:"iat"`
	EXP      float64 `json:"exp"`
	JTI      int64   `json:"jti"`
	// IssuedNS is iat in nanoseconds: what ExpireTokens compares, exactly
	// and across restarted fakes sharing a TokenSecret.
	IssuedNS int64 `json:"iat_ns"`
}

// TokenURL is the token endpoint's URL.
func (s *Server) TokenURL() string { return "http://" + s.Addr() + TokenPath }

// DeviceKey is the key the token endpoint accepts.
func (s *Server) DeviceKey() string { return s.opts.DeviceKey }

// Minted counts the tokens the token endpoint handed out.
func (s *Server) Minted() int64 { return s.minted.Load() }

// maxIssuedKept bounds the tokens Issued remembers.
const maxIssuedKept = 64

// Issued returns the last minted tokens, oldest first (for tests that check
// no token reaches a log).
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// Rejected counts the REST and WebSocket requests refused with 401 for a
// missing, wrong, revoked or expired token.
func (s *Server) Rejected() int64 { return s.rejected.Load() }

// ExpireTokens makes every token presented so far invalid, as if all had
// passed their exp: the minted ones and the static one (Token returns a new
// static token). Sessions already running are left alone; the next session
// set-up with an old token gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	s.expiredStatic = s.staticToken
	s.staticToken = randomHex(16)
	s.mu.Unlock()
	s.expiredUpTo.Store(time.Now().UnixNano())
	s.log.Info("rtm fake: every token so far expired")
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if s.failToken.Load().answer(w, "token") {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.opts.DeviceKey {
		http.Error(w, "device key rejected", http.StatusUnauthorized)
		return
	}
	clientID, ok := readClientID(w, r)
	if !ok {
		return
	}
	now := time.Now()
	c := tokenClaims{ClientID: clientID, APIID: "fake-api", JTI: s.minted.Add(1), IssuedNS: now.UnixNano(),
		IAT: float64(now.UnixNano()) / 1e9, EXP: float64(now.Add(s.opts.TokenTTL).UnixNano()) / 1e9}
	tok := s.sign(c)
	s.mu.Lock()
	if len(s.issued) == maxIssuedKept {
		s.issued = s.issued[1:]
	}
	s.issued = append(s.issued, tok)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]string{"auth_token": tok})
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (s *Server) sign(c tokenClaims) string {
	claims, _ := json.Marshal(c)
	msg := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	return msg + "." + base64.RawURLEncoding.EncodeToString(s.mac(msg))
}

func (s *Server) mac(msg string) []byte {
	m := hmac.New(sha256.New, s.opts.TokenSecret)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// checkToken says why tok is refused ("" when accepted): the static token,
// or a token this fake (or one with the same TokenSecret) minted, unexpired
// and not revoked by ExpireTokens.
func (s *Server) checkToken(tok string) string {
	if tok == "" {
		return "no token"
	}
	s.mu.Lock()
	static, expired := s.staticToken, s.expiredStatic
	s.mu.Unlock()
	switch {
	case hmac.Equal([]byte(tok), []byte(static)):
		return ""
	case hmac.Equal([]byte(tok), []byte(expired)):
		return "token expired"
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "not the token"
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.mac(parts[0]+"."+parts[1])) {
		return "bad signature"
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c tokenClaims
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return "bad claims"
	}
	if float64(time.Now().UnixNano())/1e9 >= c.EXP || c.IssuedNS <= s.expiredUpTo.Load() {
		return "token expired"
	}
	return ""
}

func randomKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}
