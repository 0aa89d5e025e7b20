// Package mjpeg splits a Motion-JPEG byte stream (concatenated JPEGs, as a
// UVC camera or `ffmpeg -f mjpeg` produces it) into single JPEG images, and
// repairs the one defect UVC frames commonly have: no Huffman tables (DHT),
// which strict decoders such as Go's image/jpeg and many browsers reject.
//
// The splitter walks the JPEG marker structure (segment lengths, then the
// entropy-coded data up to the next real marker) rather than searching for
// an FFD9 byte pair, so an EXIF thumbnail inside APP1 does not end a frame
// early. It never decodes or re-encodes image data.
package mjpeg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"sync"
)

// JPEG markers used here.
const (
	markSOI  = 0xD8
	markEOI  = 0xD9
	markSOS  = 0xDA
	markDHT  = 0xC4
	markTEM  = 0x01
	markRST0 = 0xD0
	markRST7 = 0xD7
)

// DefaultMaxFrame bounds one JPEG. Anything longer is not a camera frame.
const DefaultMaxFrame = 16 << 20

var (
	// ErrNoFrame is returned when MaxFrame bytes went by without a single
	// complete JPEG: the stream is not MJPEG.
	ErrNoFrame = errors.New("mjpeg: no JPEG frame found in stream")
)

// Splitter returns the JPEG images of an MJPEG stream one by one. Bytes
// outside any image and images cut short are skipped and counted, so a
// glitch costs one frame, not the stream. Not safe for concurrent use.
type Splitter struct {
	r        *bufio.Reader
	MaxFrame int

	skipped   uint64 // bytes outside any frame
	corrupted uint64 // frames abandoned half-way (restart, oversize, truncation)
	sinceGood int    // bytes consumed since the last good frame

	pending    byte // marker byte met at the end of entropy data
	hasPending bool
}

// NewSplitter returns a Splitter reading from r.
func NewSplitter(r io.Reader) *Splitter {
	return &Splitter{r: bufio.NewReaderSize(r, 64<<10), MaxFrame: DefaultMaxFrame}
}

// Skipped counts bytes that were outside any JPEG.
func (s *Splitter) Skipped() uint64 { return s.skipped }

// Corrupted counts frames dropped because they were cut short or too large.
func (s *Splitter) Corrupted() uint64 { return s.corrupted }

// Next returns the next complete JPEG (a fresh slice the caller owns). It
// returns io.EOF at the end of the stream, io.ErrUnexpectedEOF when the
// stream ended inside a frame, and ErrNoFrame when MaxFrame bytes went by
// without a complete frame.
func (s *Splitter) Next() ([]byte, error) {
	for {
		if err := s.findSOI(); err != nil {
			return nil, err
		}
		frame, err := s.readFrame()
		if err == nil {
			s.sinceGood = 0
			return frame, nil
		}
		if errors.Is(err, errRestart) || errors.Is(err, errTooLarge) {
			s.corrupted++
			if s.sinceGood > s.MaxFrame {
				return nil, ErrNoFrame
			}
			continue
		}
		if err == io.EOF {
			s.corrupted++
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
}

var (
	errRestart  = errors.New("SOI inside frame")
	errTooLarge = errors.New("frame too large")
)

// findSOI consumes bytes up to and including the next FF D8.
func (s *Splitter) findSOI() error {
	prevFF := false
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			if prevFF {
				s.skipped++
			}
			return err
		}
		s.sinceGood++
		if prevFF && b == markSOI {
			return nil
		}
		if prevFF {
			s.skipped++
		}
		if b == 0xFF {
			prevFF = true
			continue
		}
		prevFF = false
		s.skipped++
		if s.sinceGood > s.MaxFrame {
			return ErrNoFrame
		}
	}
}

// readFrame reads one frame after its SOI.
func (s *Splitter) readFrame() ([]byte, error) {
	s.hasPending = false
	frame := []byte{0xFF, markSOI}
	for {
		m, err := s.readMarker(&frame)
		if err != nil {
			return nil, err
		}
		switch {
		case m == markEOI:
			return frame, nil
		case m == markSOI:
			// The previous frame was cut short; this SOI starts a new one.
			s.corrupted++
			frame = append(frame[:0], 0xFF, markSOI)
			continue
		case m == markTEM || (m >= markRST0 && m <= markRST7):
			continue
		}
		// A segment with a 2-byte length that counts itself.
		var lb [2]byte
		if _, err := io.ReadFull(s.r, lb[:]); err != nil {
			return nil, eofOr(err)
		}
		n := int(lb[0])<<8 | int(lb[1])
		if n < 2 {
			return nil, errRestart
		}
		if len(frame)+n > s.MaxFrame {
			return nil, errTooLarge
		}
		frame = append(frame, lb[0], lb[1])
		start := len(frame)
		frame = append(frame, make([]byte, n-2)...)
		if _, err := io.ReadFull(s.r, frame[start:]); err != nil {
			return nil, eofOr(err)
		}
		s.sinceGood += n
		if m == markSOS {
			if err := s.readEntropy(&frame); err != nil {
				return nil, err
			}
		}
	}
}

// readMarker reads FF xx (skipping fill bytes), appends it and returns xx.
// After entropy data the FF has already been consumed; readEntropy leaves
// the marker byte in s.pending.
func (s *Splitter) readMarker(frame *[]byte) (byte, error) {
	if s.hasPending {
		s.hasPending = false
		*frame = append(*frame, 0xFF, s.pending)
		return s.pending, nil
	}
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, err
	}
	if b != 0xFF {
		return 0, errRestart
	}
	for {
		b, err = s.r.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != 0xFF {
			break
		}
	}
	s.sinceGood += 2
	*frame = append(*frame, 0xFF, b)
	return b, nil
}

// readEntropy appends entropy-coded data up to the next marker that is not a
// stuffed zero or a restart marker, and leaves that marker pending.
func (s *Splitter) readEntropy(frame *[]byte) error {
	for {
		chunk, err := s.r.ReadSlice(0xFF)
		if err != nil && err != bufio.ErrBufferFull {
			return eofOr(err)
		}
		s.sinceGood += len(chunk)
		if len(*frame)+len(chunk) > s.MaxFrame {
			return errTooLarge
		}
		if err == bufio.ErrBufferFull {
			*frame = append(*frame, chunk...)
			continue
		}
		// chunk ends in FF: look at the byte after it.
		*frame = append(*frame, chunk[:len(chunk)-1]...)
		var b byte
		for {
			b, err = s.r.ReadByte()
			if err != nil {
				return eofOr(err)
			}
			if b != 0xFF {
				break
			}
		}
		if b == 0x00 || (b >= markRST0 && b <= markRST7) {
			*frame = append(*frame, 0xFF, b)
			continue
		}
		s.pending, s.hasPending = b, true
		return nil
	}
}

func eofOr(err error) error {
	if err == io.ErrUnexpectedEOF {
		return io.EOF
	}
	return err
}

// IsJPEG reports whether b looks like one complete JPEG: SOI first and EOI
// last (trailing zero padding, which some UVC cameras add, is allowed).
func IsJPEG(b []byte) bool {
	b = bytes.TrimRight(b, "\x00")
	return len(b) >= 4 && b[0] == 0xFF && b[1] == markSOI && b[len(b)-2] == 0xFF && b[len(b)-1] == markEOI
}

// HasDHT reports whether the JPEG defines Huffman tables before its first
// scan. It walks the header segments only.
func HasDHT(b []byte) bool {
	_, has := scanHeader(b)
	return has
}

// scanHeader walks the segments after SOI up to SOS. It returns the offset
// of the SOS marker (or -1) and whether a DHT segment came first.
func scanHeader(b []byte) (sos int, dht bool) {
	if len(b) < 2 || b[0] != 0xFF || b[1] != markSOI {
		return -1, false
	}
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return -1, dht
		}
		m := b[i+1]
		if m == 0xFF {
			i++
			continue
		}
		switch {
		case m == markSOS:
			return i, dht
		case m == markDHT:
			dht = true
		case m == markEOI:
			return -1, dht
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		i += 2 + n
	}
	return -1, dht
}

// standardDHT is one DHT segment (marker included) holding the four tables
// of ITU T.81 Annex K.3, which is what UVC cameras that omit DHT assume.
// Go's encoder writes exactly those tables, so they are taken from it rather
// than retyped.
var standardDHT = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	// A colour image, so that the encoder writes all four tables.
	if err := jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 8, 8)), nil); err != nil {
		panic(fmt.Sprintf("mjpeg: encoding the DHT template: %v", err))
	}
	b := buf.Bytes()
	var out []byte
	i := 2
	for i+4 <= len(b) && b[i] == 0xFF && b[i+1] != markSOS {
		n := int(b[i+2])<<8 | int(b[i+3])
		if b[i+1] == markDHT {
			out = append(out, b[i:i+2+n]...)
		}
		i += 2 + n
	}
	return out
})

// EnsureDHT returns b unchanged when it carries Huffman tables, or a copy
// with the standard tables inserted after SOI when it does not. b that is
// not a JPEG is returned unchanged.
func EnsureDHT(b []byte) []byte {
	sos, has := scanHeader(b)
	if has || sos < 0 {
		return b
	}
	dht := standardDHT()
	out := make([]byte, 0, len(b)+len(dht))
	out = append(out, b[:2]...)
	out = append(out, dht...)
	return append(out, b[2:]...)
}
