package edgeimpulse

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/edge-agent/edge-agent/internal/retry"
	"github.com/edge-agent/edge-agent/transport"
)

// Why a spooled sample was dropped. Each reason is a status detail
// ("dropped_<reason>": count), so /status and /metrics say what was lost.
const (
	dropInvalid  = "invalid"   // ingestion said the sample is invalid (400/422 with a reason)
	dropTooLarge = "too_large" // ingestion said the sample is too large (413 with a reason)
	dropRefused  = "refused"   // a /files reply refused the file (success false, with an error)
	dropDamaged  = "damaged"   // the spool item is not an Edge Impulse sample (damaged metadata)
)

// drops counts dropped samples by reason. Safe for concurrent use.
type drops struct {
	mu sync.Mutex
	n  map[string]uint64
}

// drop counts err's sample as dropped for reason, shows the count in the
// status details and returns err as permanent (the spool removes the item).
func (d *drops) drop(stats *transport.Stats, reason string, err error) error {
	d.mu.Lock()
	if d.n == nil {
		d.n = map[string]uint64{}
	}
	d.n[reason]++
	n := d.n[reason]
	d.mu.Unlock()
	stats.SetDetail("dropped_"+reason, strconv.FormatUint(n, 10))
	return retry.Permanent(err)
}

// sampleInvalid reports whether a 400, 413 or 422 says why the sample itself is
// refused: ingestion's own answers carry a reason (/data: a text body; /files:
// JSON with an error; docs/protocols/edge-impulse.md §5.3). A bare status, or
// an HTML page from a proxy or a load balancer, says nothing about the sample,
// and the sample is kept.
func sampleInvalid(code int, contentType string, body []byte) bool {
	if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge && code != http.StatusUnprocessableEntity {
		return false
	}
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] == '<' || strings.Contains(strings.ToLower(contentType), "html") {
		return false
	}
	if b[0] != '{' {
		return true // a text reason
	}
	var r struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	return json.Unmarshal(b, &r) == nil && (strings.TrimSpace(r.Error) != "" || strings.TrimSpace(r.Message) != "")
}
