package camservertest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// session is one authorized session row.
type session struct {
	shash, device, meta, ip string
	last                    time.Time
	total, perMin           int
	created                 uint64 // order of creation: newest session wins for streams
}

type message struct {
	from, target, msg string
	params            string // stored as JSON text, as the server does
	stamp             string
	at                time.Time
}

// Record is one stored media record.
type Record struct {
	RID    int64
	Device string
	Meta   string
	Stamp  string
	Data   []byte
}

type configKind struct {
	kind         int
	descr        string
	miv, mav, dv float64
	fv           float64
	hasFV        bool
}

func defaultConfig() []*configKind {
	return []*configKind{
		{kind: 1, descr: "records lifetime (days)", miv: 1, mav: 120, dv: 30},
		{kind: 2, descr: "dead session timeout (min)", miv: 3, mav: 30, dv: 10},
		{kind: 3, descr: "max requests for session", miv: 200, mav: 10000, dv: 1500},
		{kind: 4, descr: "max requests per minute", miv: 20, mav: 200, dv: 50},
		{kind: 5, descr: "broadcast lifetime (h)", miv: 1, mav: 750, dv: 125},
		{kind: 6, descr: "message lifetime (days)", miv: 1, mav: 120, dv: 30},
	}
}

func (k *configKind) value() float64 {
	v := k.dv
	if k.hasFV {
		v = k.fv
	}
	return min(max(v, k.miv), k.mav)
}

func newShash() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:]) // 28 chars, may hold + / =
}

// stampLocked returns a new server stamp: UTC time plus a global counter
// modulo 10000 (not a fraction of a second), compared as text.
func (s *Server) stampLocked() string {
	s.counter = (s.counter + 1) % 10000
	return fmt.Sprintf("%s.%04d", s.now().UTC().Format("2006-01-02 15:04:05"), s.counter)
}

// paramsJSON returns params as stored: objects and arrays as their JSON text,
// strings unquoted (the quirk that later breaks getMsgs with code 4).
func paramsJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
