package frameio

import "errors"

// refreshRejected reports whether Frame.io itself refused a refresh for good:
// the OAuth error codes (docs/protocols/frameio-c2c.md §2.3, §2.4) that mean
// the refresh token or the client is no longer valid (invalid_grant,
// invalid_client), which no retry and no file re-read fixes (a re-pair does).
// Any other answer (404, 408, a 400 or 401 without that code, an HTML page)
// is what a proxy or a deploy in between answers for minutes: retried with
// the normal backoff, the tokens kept.
func refreshRejected(e *APIError) bool {
	for _, c := range []string{e.Code, e.Message} {
		if c == "invalid_grant" || c == "invalid_client" {
			return true
		}
	}
	return false
}

// classifyLink is classify for the link's own calls (GET /v2/devices/me at
// dial): what classify treats as a refusal of one item (400, 413, 415, 422)
// is no verdict on the link, whose next call may well succeed once a proxy
// or a deploy in between is fixed, so it is retried with the supervisor's
// backoff (the error, with its status, is the link's last error in
// /status). A rejected client (invalid_client) stays permanent, and a
// requested wait is kept.
func classifyLink(e *APIError) error {
	err := classify(e)
	var refused *itemRefused
	if errors.As(err, &refused) {
		return e
	}
	return err
}
