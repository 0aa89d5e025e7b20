package rtm

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
)

// Message types of the RTM protocol (../shared/specs/webrtc-rtm.md §3).
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

// Session states (spec §4).
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

// Termination causes (spec §4). Unknown causes are treated as CauseConnError.
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

// SDP returns the session description of session_start or sdp_update.
func (m Message) SDP() (webrtc.SessionDescription, error) {
	var d SDPData
	if err := m.decodeData(&d); err != nil {
		return webrtc.SessionDescription{}, err
	}
	if d.SDP == nil || d.SDP.SDP == "" {
		return webrtc.SessionDescription{}, fmt.Errorf("rtm %s: %w: no sdp", m.Type, ErrBadMessage)
	}
	switch d.SDP.Type {
	case webrtc.SDPTypeOffer, webrtc.SDPTypeAnswer:
	default:
		return webrtc.SessionDescription{}, fmt.Errorf("rtm %s: %w: sdp type %q", m.Type, ErrBadMessage, d.SDP.Type)
	}
	return *d.SDP, nil
}

// Candidate returns the ICE candidate of a candidate message.
func (m Message) Candidate() (webrtc.ICECandidateInit, error) {
	var d CandidateData
	if err := m.decodeData(&d); err != nil {
		return webrtc.ICECandidateInit{}, err
	}
	if d.Candidate == nil {
		return webrtc.ICECandidateInit{}, fmt.Errorf("rtm %s: %w: no candidate", m.Type, ErrBadMessage)
	}
	return *d.Candidate, nil
}

// SessionState returns the data of session_state.
func (m Message) SessionState() (SessionStateData, error) {
	var d SessionStateData
	if err := m.decodeData(&d); err != nil {
		return d, err
	}
	if d.State == "" {
		return d, fmt.Errorf("rtm %s: %w: no state", m.Type, ErrBadMessage)
	}
	return d, nil
}

// RecordingState returns the data of recording_state.
func (m Message) RecordingState() (RecordingStateData, error) {
	var d RecordingStateData
	if err := m.decodeData(&d); err != nil {
		return d, err
	}
	switch d.State {
	case RecordingStarted, RecordingStopped, RecordingFailed:
		return d, nil
	}
	return d, fmt.Errorf("rtm %s: %w: state %q", m.Type, ErrBadMessage, d.State)
}

// RecordingStart returns the data of recording_start.
func (m Message) RecordingStart() (RecordingStartData, error) {
	var d RecordingStartData
	if err := m.decodeData(&d); err != nil {
		return d, err
	}
	if d.UploadURL == "" {
		return d, fmt.Errorf("rtm %s: %w: no upload_url", m.Type, ErrBadMessage)
	}
	return d, nil
}
