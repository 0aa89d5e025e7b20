package camserver

// maxPeerText bounds a string another party supplies (a message's name and
// sender, written by any device on the account) before it is logged or
// kept in an error.
const maxPeerText = 128

// peer makes a peer-supplied string safe to log or show: the agent's
// secrets (the password, the session id) masked first, then control
// characters removed and the length bounded.
func (l *Link) peer(s string) string { return l.deps.Secrets.Peer(s, maxPeerText) }
