package camserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/edge-agent/edge-agent/internal/redact"
)

// Code is a camera server `BAD` result code (docs/protocols/camera-server.md §7.1).
type Code int

// The server's result codes.
const (
	CodeNoError          Code = 0
	CodeUnspecified      Code = 1
	CodeInternalUnknown  Code = 2
	CodeDatabaseFail     Code = 3
	CodeJSONParserFail   Code = 4
	CodeJSONFail         Code = 5
	CodeNoSuchSession    Code = 6
	CodeNoSuchUser       Code = 7
	CodeNoDevicesOnline  Code = 8
	CodeNoSuchRecord     Code = 9
	CodeNoDataReturned   Code = 10
	CodeEmptyRequest     Code = 11
	CodeMalformedRequest Code = 12
	CodeNoChannel        Code = 13
	CodeErroredStream    Code = 14
	CodeNoSuchDevice     Code = 15
)

var codeNames = [...]string{
	"NO_ERROR", "UNSPECIFIED", "INTERNAL_UNKNOWN_ERROR", "DATABASE_FAIL", "JSON_PARSER_FAIL",
	"JSON_FAIL", "NO_SUCH_SESSION", "NO_SUCH_USER", "NO_DEVICES_ONLINE", "NO_SUCH_RECORD",
	"NO_DATA_RETURNED", "EMPTY_REQUEST", "MALFORMED_REQUEST", "NO_CHANNEL", "ERRORED_STREAM",
	"NO_SUCH_DEVICE",
}

func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "CODE_" + strconv.Itoa(int(c))
}

// Transient reports whether retrying the same request later can succeed.
func (c Code) Transient() bool {
	switch c {
	case CodeUnspecified, CodeInternalUnknown, CodeDatabaseFail, CodeNoSuchSession, CodeNoSuchDevice:
		return true
	}
	return false
}

// APIError is a `{"result":"BAD","code":N}` answer. Compare with errors.Is
// against the Err… sentinels (which match on Code alone) or errors.As.
type APIError struct {
	Op   string
	Code Code
}

func (e *APIError) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("camserver: %v (code %d)", e.Code, int(e.Code))
	}
	return fmt.Sprintf("%s: server answered %v (code %d)", e.Op, e.Code, int(e.Code))
}

// Is matches a sentinel with the same code.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	return ok && t.Op == "" && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrNoSuchSession    = &APIError{Code: CodeNoSuchSession}
	ErrNoSuchUser       = &APIError{Code: CodeNoSuchUser}
	ErrNoSuchRecord     = &APIError{Code: CodeNoSuchRecord}
	ErrNoDataReturned   = &APIError{Code: CodeNoDataReturned}
	ErrNoDevicesOnline  = &APIError{Code: CodeNoDevicesOnline}
	ErrMalformedRequest = &APIError{Code: CodeMalformedRequest}
	ErrJSONParserFail   = &APIError{Code: CodeJSONParserFail}
	ErrNoSuchDevice     = &APIError{Code: CodeNoSuchDevice}
	ErrEmptyRequest     = &APIError{Code: CodeEmptyRequest}
)

// HTTPError is a non-200 answer. The server itself sends 404/405 only for a
// wrong path or method, but a proxy or a deploy in between sends them too,
// so none is taken as final.
type HTTPError struct {
	Op     string
	Status int
}

func (e *HTTPError) Error() string { return fmt.Sprintf("%s: HTTP status %d", e.Op, e.Status) }

// ErrBadResponse says a response body was not the JSON the server sends.
var ErrBadResponse = errors.New("malformed response")

// Response is the union of the fields any JSON endpoint answers with.
type Response struct {
	Result  string        `json:"result"`
	Code    *int          `json:"code,omitempty"`
	Shash   string        `json:"shash,omitempty"`
	Stamp   string        `json:"stamp,omitempty"`
	Device  string        `json:"device,omitempty"`
	Meta    string        `json:"meta,omitempty"`
	Config  []ConfigEntry `json:"config,omitempty"`
	Msgs    []Message     `json:"msgs,omitempty"`
	Records []RecordInfo  `json:"records,omitempty"`
	Devices []DeviceInfo  `json:"devices,omitempty"`
}

// ConfigEntry is one account limit from getConfig.json.
type ConfigEntry struct {
	Kind  int     `json:"kind"`
	Descr string  `json:"descr,omitempty"`
	Min   float64 `json:"miv"`
	Max   float64 `json:"mav"`
	Def   float64 `json:"dv"`
	Value float64 `json:"fv"`
}

// Clamped is the value the server uses: fv clamped to [miv, mav].
func (e ConfigEntry) Clamped() float64 { return min(max(e.Value, e.Min), e.Max) }

// Message is one message from getMsgs.json. Params is the raw JSON object.
type Message struct {
	Msg    string          `json:"msg"`
	Device string          `json:"device,omitempty"`
	Target string          `json:"target,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Stamp  string          `json:"stamp,omitempty"`
}

// RecordInfo is one entry of getRecordCount.json.
type RecordInfo struct {
	RID    int64  `json:"rid"`
	Device string `json:"device"`
	Stamp  string `json:"stamp"`
}

// DeviceInfo is one entry of getDevicesOnline.json / getStreams.json.
type DeviceInfo struct {
	Device   string `json:"device"`
	Meta     string `json:"meta,omitempty"`
	Subproto string `json:"subproto,omitempty"`
	Delta    any    `json:"delta,omitempty"`
}

// DecodeResponse parses a JSON endpoint's body. A `BAD` result becomes an
// *APIError; anything that is not an object with result OK or BAD is
// ErrBadResponse, naming the result with sec's secrets masked before it is
// cut (nil sec: cleaned and cut only). The server's body is untrusted
// input: this never panics.
func DecodeResponse(op string, body []byte, sec *redact.Secrets) (*Response, error) {
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", op, ErrBadResponse, err)
	}
	switch r.Result {
	case "OK":
		return &r, nil
	case "BAD":
		if r.Code == nil {
			return nil, fmt.Errorf("%s: %w: BAD without a code", op, ErrBadResponse)
		}
		return nil, &APIError{Op: op, Code: Code(*r.Code)}
	}
	// Masked first: cut first, an echoed password or session id would keep
	// its first bytes, which no mask matches any more.
	return nil, fmt.Errorf("%s: %w: result %q", op, ErrBadResponse, sec.Peer(r.Result, maxResultText))
}

// badRecordData reports whether a getRecordData body is the JSON BAD object
// rather than the record's bytes (the server uses the same 200 for both).
func badRecordData(op string, body []byte) error {
	if len(body) == 0 || body[0] != '{' || len(body) > 256 {
		return nil
	}
	var r struct {
		Result string `json:"result"`
		Code   *int   `json:"code"`
	}
	if json.Unmarshal(body, &r) != nil || r.Result != "BAD" || r.Code == nil {
		return nil
	}
	return &APIError{Op: op, Code: Code(*r.Code)}
}

// maxResultText bounds an unexpected `result` quoted in an error.
const maxResultText = 32
