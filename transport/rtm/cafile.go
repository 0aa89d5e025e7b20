package rtm

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/edge-agent/edge-agent/internal/retry"
)

// dialTLS returns the TLS settings for a new session. tlsConfig reads
// ca_file at every dial, so a replaced certificate takes effect without a
// restart; a file that is missing or unreadable at that moment (an operator
// replacing it) keeps the settings read before, says so in the status
// detail "ca_file" and is read again at the next dial. Without good
// settings yet the error is transient: the supervisor retries, the file may
// appear. (camserver does the same, issue 13 #12.)
func (l *Link) dialTLS() (*tls.Config, error) {
	tc, err := tlsConfig(&l.cfg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		if l.caUnread {
			l.log.Info("rtm ca_file readable again", "file", l.cfg.CAFile)
			l.deps.Stats.SetDetail("ca_file", "")
			l.caUnread = false
		}
		l.lastTLS = tc
		return tc, nil
	}
	var pe *retry.PermanentError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if l.lastTLS == nil {
		l.deps.Stats.SetDetail("ca_file", "unreadable; retrying")
		return nil, fmt.Errorf("%w (retrying; is the file being replaced?)", err)
	}
	if !l.caUnread {
		l.log.Warn("rtm ca_file unreadable; using the CA read before", "err", err)
		l.caUnread = true
	}
	l.deps.Stats.SetDetail("ca_file", "unreadable; using the CA read before")
	return l.lastTLS.Clone(), nil
}
