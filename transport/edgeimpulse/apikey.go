package edgeimpulse

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/edge-agent/edge-agent/internal/redact"
)

// apiKey is the project API key. Edge Impulse keys do not expire, but a
// project owner can revoke one and issue another. With api_key_file the link
// re-reads the file before every session and after ingestion refuses the key,
// so a rotated key takes effect without a restart, and hello:false is retried
// with backoff ("waiting for a new key in …") instead of failing the link. An
// inline api_key is static: hello:false stays permanent.
//
// Concurrency: safe for concurrent use (Dial and the upload worker).
type apiKey struct {
	file string
	// secrets learns every key read, under slot, so a service's echo of
	// it never reaches a log (nil: none).
	secrets *redact.Secrets
	slot    string

	mu  sync.Mutex
	cur string
}

// get returns the key in use.
func (k *apiKey) get() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur
}

// reload re-reads api_key_file (a no-op for an inline key) and reports
// whether the key changed. On an error the key in use is kept.
func (k *apiKey) reload() (changed bool, err error) {
	if k.file == "" {
		return false, nil
	}
	b, err := os.ReadFile(k.file)
	if err != nil {
		return false, fmt.Errorf("api_key_file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return false, fmt.Errorf("api_key_file %s is empty", k.file)
	}
	k.secrets.Set(k.slot, key)
	k.mu.Lock()
	defer k.mu.Unlock()
	changed, k.cur = key != k.cur, key
	return changed, nil
}
