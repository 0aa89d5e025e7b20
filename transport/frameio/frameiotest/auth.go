package frameiotest

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"time"
)

func oauthError(w http.ResponseWriter, code string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code})
}

// checkClient parses the multipart form and checks the credentials.
func (s *Server) checkClient(w http.ResponseWriter, r *http.Request) bool {
	s.noteVersion(r)
	if err := r.ParseMultipartForm(1 << 16); err != nil {
		oauthError(w, "invalid_request")
		return false
	}
	if r.FormValue("client_id") != s.opts.ClientID || r.FormValue("client_secret") != s.opts.ClientSecret {
		oauthError(w, "invalid_client")
		return false
	}
	return true
}

func (s *Server) handleCode(w http.ResponseWriter, r *http.Request) {
	if !s.checkClient(w, r) {
		return
	}
	if r.FormValue("scope") != "asset_create offline" {
		oauthError(w, "invalid_request")
		return
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
	c := &code{device: "dc-" + randHex(16), user: fmt.Sprintf("%06d", n.Int64()),
		expires: time.Now().Add(time.Duration(s.opts.CodeTTL) * time.Second)}
	s.mu.Lock()
	s.codes[c.device] = c
	s.stats.Codes++
	s.mu.Unlock()
	s.log.Info("frameio fake: pairing code issued", "user_code", c.user)
	writeJSON(w, http.StatusOK, map[string]any{"device_code": c.device, "user_code": c.user,
		"expires_in": s.opts.CodeTTL, "interval": s.opts.Interval, "name": "Frameio-" + s.opts.ClientID,
		"verification_uri": s.URL() + "/pair", "verification_uri_complete": s.URL() + "/pair?code=" + c.user})
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if !s.checkClient(w, r) {
		return
	}
	switch r.FormValue("grant_type") {
	case "urn:ietf:params:oauth:grant-type:device_code":
		s.pollCode(w, r.FormValue("device_code"))
	case "refresh_token":
		rt := r.FormValue("refresh_token")
		s.mu.Lock()
		if !s.refresh[rt] {
			s.mu.Unlock()
			oauthError(w, "invalid_grant")
			return
		}
		delete(s.refresh, rt) // refresh tokens rotate (docs/protocols/frameio-c2c.md §2.4)
		a, nrt, exp := s.issueLocked()
		s.stats.Refreshes++
		s.mu.Unlock()
		s.log.Info("frameio fake: token refreshed")
		writeJSON(w, http.StatusOK, map[string]any{"access_token": a, "refresh_token": nrt, "expires_in": exp, "token_type": "bearer"})
	default:
		oauthError(w, "invalid_request")
	}
}

func (s *Server) pollCode(w http.ResponseWriter, device string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Polls++
	c, ok := s.codes[device]
	if !ok {
		oauthError(w, "invalid_grant")
		return
	}
	answer := ""
	switch {
	case len(s.pairScript) > 0:
		answer, s.pairScript = s.pairScript[0], s.pairScript[1:]
	case time.Now().After(c.expires):
		answer = "expired_token"
	case s.opts.AutoApprove > 0 && c.polls < s.opts.AutoApprove:
		answer = "authorization_pending"
	}
	c.polls++
	if answer != "" {
		if answer == "expired_token" || answer == "invalid_grant" {
			delete(s.codes, device)
		}
		oauthError(w, answer)
		return
	}
	delete(s.codes, device)
	a, rt, exp := s.issueLocked()
	s.log.Info("frameio fake: device paired", "user_code", c.user)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": a, "refresh_token": rt, "expires_in": exp, "token_type": "bearer"})
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if !s.checkClient(w, r) {
		return
	}
	tok := r.FormValue("token")
	s.mu.Lock()
	known := s.refresh[tok]
	delete(s.refresh, tok)
	if known {
		s.stats.Revokes++
	}
	s.mu.Unlock()
	if !known {
		oauthError(w, "invalid_grant")
		return
	}
	s.log.Info("frameio fake: device deauthorized")
	w.WriteHeader(http.StatusOK)
}
