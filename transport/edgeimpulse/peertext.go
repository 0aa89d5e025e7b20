package edgeimpulse

// maxPeerText bounds a string the service supplies (a Hello refusal, an
// ingestion answer) before it is logged, returned in an error or shown in
// /status: the ingestion body used to be copied raw, 200 bytes of anything.
const maxPeerText = 200

// peer makes a service-supplied string safe to log or show: the agent's
// secrets (the API key among them) masked first, then control characters
// removed and the length bounded.
func (l *Link) peer(s string) string { return l.deps.Secrets.Peer(s, maxPeerText) }

// peerKeys is peer for an unknown message's keys in a log line.
func (l *Link) peerKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = l.peer(k)
	}
	return out
}
