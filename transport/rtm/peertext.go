package rtm

// maxPeerText bounds a string the service supplies (a session state, a
// termination cause, a recording id, the first ping) before it is logged,
// kept in an error or shown in /status.
const maxPeerText = 200

// peer makes a service-supplied string safe to log or show: the agent's
// secrets (tokens among them) masked first, then control characters removed
// and the length bounded.
func (l *Link) peer(s string) string { return l.deps.Secrets.Peer(s, maxPeerText) }

// peerType is peer for a message type in a log line, bounded to
// maxLoggedType. It masks before it cuts: a type cut first could end in the
// start of a token the service echoed, which no mask matches any more.
func (l *Link) peerType(t string) string { return l.deps.Secrets.Peer(t, maxLoggedType) }
