// Package frame is the camera server's raw stream framing: a two-byte start
// marker AA AA, the payload length as a little-endian uint32, then the payload.
// Frames follow each other with no padding, checksum or resynchronisation, so
// a decoder that meets a bad header must stop: nothing after it can be trusted.
//
// The encoder builds each frame as one contiguous buffer because every Write
// on an HTTP/2 request body becomes its own DATA frame: a separate 6-byte
// header write would double the DATA frames. The decoder reads from an
// io.Reader with memory bounded by the largest payload it accepts.
//
// Concurrency: Decoder is not safe for concurrent use; the functions are.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	// HeaderLen is the size of the marker plus the length field.
	HeaderLen = 6
	// Marker is the two start bytes (0xAAAA).
	Marker = 0xAA
	// MaxPayload is the largest payload we send or accept. The reference
	// server accepts up to 1 048 570 bytes but frames above ~512 KiB were
	// unreliable on the running server, so we cap it at 500 000
	// (docs/protocols/camera-server.md §3.2).
	MaxPayload = 500_000
	// ServerMaxPayload is the reference server's hard limit.
	ServerMaxPayload = 1_048_570
)

// ErrBadMarker says the stream did not start a frame with AA AA.
var ErrBadMarker = errors.New("bad frame marker")

// ErrTooLarge says a frame's payload exceeds the allowed maximum.
var ErrTooLarge = errors.New("frame too large")

// Error describes a malformed frame: Err is ErrBadMarker or ErrTooLarge, so
// callers decide with errors.Is; Offset is the stream offset of the header.
type Error struct {
	Err    error
	Offset int64
	Header [HeaderLen]byte
	Length uint32 // the declared length (for ErrTooLarge)
	Max    int
}

func (e *Error) Error() string {
	if errors.Is(e.Err, ErrTooLarge) {
		return fmt.Sprintf("frame at offset %d: %v: %d bytes > %d", e.Offset, e.Err, e.Length, e.Max)
	}
	return fmt.Sprintf("frame at offset %d: %v: header % x", e.Offset, e.Err, e.Header)
}

func (e *Error) Unwrap() error { return e.Err }

// PutHeader writes the header for a payload of n bytes into dst[:HeaderLen].
func PutHeader(dst []byte, n int) {
	_ = dst[HeaderLen-1]
	dst[0], dst[1] = Marker, Marker
	binary.LittleEndian.PutUint32(dst[2:], uint32(n))
}

// Append appends one frame carrying payload to dst and returns the result.
// It returns ErrTooLarge (wrapped in *Error) for payloads above MaxPayload.
func Append(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, &Error{Err: ErrTooLarge, Length: uint32(min(uint64(len(payload)), 1<<32-1)), Max: MaxPayload, Offset: -1}
	}
	var h [HeaderLen]byte
	PutHeader(h[:], len(payload))
	dst = append(dst, h[:]...)
	return append(dst, payload...), nil
}

// Encode returns a new buffer holding one frame for payload.
func Encode(payload []byte) ([]byte, error) {
	return Append(make([]byte, 0, HeaderLen+len(payload)), payload)
}

// Decoder reads frames from a stream. Each payload is returned in a buffer the
// decoder reuses, so memory stays at one maximum payload however long the
// stream is.
type Decoder struct {
	r   io.Reader
	max int
	off int64
	hdr [HeaderLen]byte
	buf []byte
}

// NewDecoder returns a decoder that accepts payloads up to max bytes (0 means
// MaxPayload).
func NewDecoder(r io.Reader, max int) *Decoder {
	if max <= 0 {
		max = MaxPayload
	}
	return &Decoder{r: r, max: max}
}

// Offset is the number of stream bytes consumed by complete frames.
func (d *Decoder) Offset() int64 { return d.off }

// Next returns the next payload. The slice is valid until the next call. At a
// clean end between frames it returns io.EOF; a stream cut inside a frame
// gives io.ErrUnexpectedEOF; a bad header gives an *Error, after which the
// decoder must not be used again.
func (d *Decoder) Next() ([]byte, error) {
	if _, err := io.ReadFull(d.r, d.hdr[:]); err != nil {
		return nil, err
	}
	if d.hdr[0] != Marker || d.hdr[1] != Marker {
		return nil, &Error{Err: ErrBadMarker, Offset: d.off, Header: d.hdr}
	}
	n := binary.LittleEndian.Uint32(d.hdr[2:])
	if uint64(n) > uint64(d.max) {
		return nil, &Error{Err: ErrTooLarge, Offset: d.off, Header: d.hdr, Length: n, Max: d.max}
	}
	if cap(d.buf) < int(n) {
		d.buf = make([]byte, n)
	}
	p := d.buf[:n]
	if _, err := io.ReadFull(d.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	d.off += HeaderLen + int64(n)
	return p, nil
}
