package rtm

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
)

// Message types of the RTM protocol (docs/protocols/webrtc-rtm.md §3.2).
const (
	TypeSessionStart   = "session_start"
	TypeSessionStop    = "session_stop"
	TypeSessionState   = "session_state"
	TypeSDPUpdate      = "sdp_update"
	TypeCandidate      = "candidate"
	TypeRecordingStart = "recording_start"
	TypeRecordingStop  = "recording_stop"
	TypeRecordingState = "recording_state"
	TypePing           = "ping"
	TypePong           = "pong"
)

// Session states (docs/protocols/webrtc-rtm.md §4.1).
const (
	StateInit       = "INIT"
	StateSetup      = "SETUP"
	StateActive     = "ACTIVE"
	StateShutdown   = "SHUTDOWN"
	StateTerminated = "TERMINATED"
)

// Recording states.
const (
	RecordingStarted = "STARTED"
	RecordingStopped = "STOPPED"
	RecordingFailed  = "FAILED"
)

// Termination causes (docs/protocols/webrtc-rtm.md §4.3). Unknown causes are
// treated as CauseConnError.
const (
	CauseConnError        = "CONN_ERROR"
	CauseConnTimeout      = "CONN_TIMEOUT"
	CauseTermByClient     = "TERM_BY_CLIENT"
	CauseAgentSessionTerm = "AGENT_SESSION_TERM"
	CausePeerConnFailed   = "PEERCONN_FAILED"
	CauseSDPError         = "SDP_ERROR"
	CauseServiceShutdown  = "SERVICE_SHUTDOWN"
	CauseNoActiveAgent    = "NO_ACTIVE_AGENT"
	CauseTwoTimer         = "TWO_TIMER"
	CauseMaxSupervisors   = "MAX_SUPERVISORS_PER_AGENT"
	CauseNoPacketReceived = "NO_PACKET_RECEIVED"
)

// MaxMessageSize bounds one signalling frame. An SDP offer with two media
// sections is a few KiB; anything near this limit is a broken peer.
const MaxMessageSize = 256 << 10

// Message is one RTM frame: {"type","client_id","session_id","data"}. Data
// stays raw until the receiver knows the type; the typed accessors below
// decode and check it.
type Message struct {
	Type      string          `json:"type"`
	ClientID  string          `json:"client_id,omitempty"`
	SessionID string          `json:"session_id,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// SDPData is the data of session_start and sdp_update.
type SDPData struct {
	SDP        *webrtc.SessionDescription `json:"sdp"`
	WebhookURL string                     `json:"webhook_url,omitempty"`
	Version    string                     `json:"version,omitempty"`
}

// CandidateData is the data of candidate (trickle ICE).
type CandidateData struct {
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
}

// SessionStateData is the data of session_state.
type SessionStateData struct {
	State            string `json:"state"`
	TerminationCause string `json:"termination_cause,omitempty"`
}

// RecordingStartData is the data of recording_start.
type RecordingStartData struct {
	UploadURL  string `json:"upload_url"`
	WebhookURL string `json:"webhook_url,omitempty"`
}

// RecordingStateData is the data of recording_state.
type RecordingStateData struct {
	RecordingID string `json:"recording_id,omitempty"`
	State       string `json:"state"`
}

// ErrBadMessage marks a frame the peer sent that does not follow the protocol.
var ErrBadMessage = errors.New("bad rtm message")

// DecodeMessage parses one frame and checks the envelope. It never panics on
// any input (fuzzed), and its errors wrap ErrBadMessage.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessageSize {
		return m, fmt.Errorf("decode rtm message: %w: %d bytes", ErrBadMessage, len(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fmt.Errorf("decode rtm message: %w: %v", ErrBadMessage, err)
	}
	if m.Type == "" {
		return Message{}, fmt.Errorf("decode rtm message: %w: no type", ErrBadMessage)
	}
	if len(m.Data) > 0 && string(m.Data) != "null" && m.Data[0] != '{' {
		return Message{}, fmt.Errorf("decode rtm message %s: %w: data is not an object", m.Type, ErrBadMessage)
	}
	return m, nil
}

// NewMessage builds a frame with data marshalled (nil data becomes {}).
func NewMessage(typ, clientID, sessionID string, data any) (Message, error) {
	m := Message{Type: typ, ClientID: clientID, SessionID: sessionID, Data: json.RawMessage("{}")}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return Message{}, fmt.Errorf("encode rtm %s: %w", typ, err)
		}
		m.Data = b
	}
	return m, nil
}

func (m Message) decodeData(v any) error {
	if len(m.Data) == 0 || string(m.Data) == "null" {
		return fmt.Errorf("rtm %s: %w: no data", m.Type, ErrBadMessage)
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		return fmt.Errorf("rtm %s: %w: %v", m.Type, ErrBadMessage, err)
	}
	return nil
}

// decodeAs decodes m's data as a T; check names what is wrong with it ("" for
// nothing), which becomes an ErrBadMessage.
func decodeAs[T any](m Message, check func(d *T) string) (T, error) {
	var d T
	if err := m.decodeData(&d); err != nil {
		return d, err
	}
	if problem := check(&d); problem != "" {
		return d, fmt.Errorf("rtm %s: %w: %s", m.Type, ErrBadMessage, problem)
	}
	return d, nil
}

// SDP returns the session description of session_start or sdp_update.
func (m Message) SDP() (webrtc.SessionDescription, error) {
	d, err := decodeAs(m, func(d *SDPData) string {
		switch {
		case d.SDP == nil || d.SDP.SDP == "":
			return "no sdp"
		case d.SDP.Type != webrtc.SDPTypeOffer && d.SDP.Type != webrtc.SDPTypeAnswer:
			return fmt.Sprintf("sdp type %q", d.SDP.Type)
		}
		return ""
	})
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	return *d.SDP, nil
}

// Candidate returns the ICE candidate of a candidate message.
func (m Message) Candidate() (webrtc.ICECandidateInit, error) {
	d, err := decodeAs(m, func(d *CandidateData) string {
		if d.Candidate == nil {
			return "no candidate"
		}
		return ""
	})
	if err != nil {
		return webrtc.ICECandidateInit{}, err
	}
	return *d.Candidate, nil
}

// SessionState returns the data of session_state.
func (m Message) SessionState() (SessionStateData, error) {
	return decodeAs(m, func(d *SessionStateData) string {
		if d.State == "" {
			return "no state"
		}
		return ""
	})
}

// RecordingState returns the data of recording_state.
func (m Message) RecordingState() (RecordingStateData, error) {
	return decodeAs(m, func(d *RecordingStateData) string {
		switch d.State {
		case RecordingStarted, RecordingStopped, RecordingFailed:
			return ""
		}
		return fmt.Sprintf("state %q", d.State)
	})
}

// RecordingStart returns the data of recording_start.
func (m Message) RecordingStart() (RecordingStartData, error) {
	return decodeAs(m, func(d *RecordingStartData) string {
		if d.UploadURL == "" {
			return "no upload_url"
		}
		return ""
	})
}
