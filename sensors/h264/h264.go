// Package h264 splits an H.264 Annex-B byte stream into access units and keeps
// every keyframe self-contained (SPS and PPS in front of each IDR), so a
// receiver that joins late, or a new WebRTC session, can start decoding at the
// next keyframe. It does no decoding and no re-encoding.
package h264

import (
	"bytes"
	"errors"
	"io"
)

// NAL unit types used here (ITU-T H.264 table 7-1).
const (
	NALSlice    = 1
	NALIDR      = 5
	NALSEI      = 6
	NALSPS      = 7
	NALPPS      = 8
	NALAUD      = 9
	startCode4  = "\x00\x00\x00\x01"
	maxNALBytes = 4 << 20 // a NAL larger than this is garbage, not video
)

// ErrNALTooLarge is returned when no start code shows up within maxNALBytes.
var ErrNALTooLarge = errors.New("h264: NAL unit larger than 4 MiB (not an Annex-B stream?)")

// NALType returns the type of a NAL unit without its start code.
func NALType(nal []byte) int {
	if len(nal) == 0 {
		return -1
	}
	return int(nal[0] & 0x1f)
}

// SplitNALs returns the NAL units of an Annex-B buffer, without start codes.
func SplitNALs(b []byte) [][]byte {
	var out [][]byte
	for {
		i := findStart(b)
		if i < 0 {
			return out
		}
		b = b[i:]
		b = b[startLen(b):]
		j := findStart(b)
		if j < 0 {
			if len(b) > 0 {
				out = append(out, trimTrailingZeros(b))
			}
			return out
		}
		if j > 0 {
			out = append(out, trimTrailingZeros(b[:j]))
		}
		b = b[j:]
	}
}

func findStart(b []byte) int { return bytes.Index(b, []byte{0, 0, 1}) - leadingZero(b) }

// leadingZero returns 1 when the first start code found is a 4-byte one, so
// the returned index points at its first zero; otherwise 0.
func leadingZero(b []byte) int {
	i := bytes.Index(b, []byte{0, 0, 1})
	if i > 0 && b[i-1] == 0 {
		return 1
	}
	return 0
}

func startLen(b []byte) int {
	if len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 1 {
		return 4
	}
	return 3
}

func trimTrailingZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// AccessUnit is one coded picture in Annex-B form.
type AccessUnit struct {
	Data     []byte // start-code-prefixed NAL units
	Keyframe bool   // contains an IDR slice (SPS/PPS put in front)
}

// Splitter reads Annex-B from r and returns access units one by one. It caches
// the latest SPS and PPS and puts them in front of every IDR that lacks them.
// Not safe for concurrent use.
type Splitter struct {
	r       io.Reader
	buf     []byte
	eof     bool
	sps     []byte
	pps     []byte
	pending [][]byte // NALs of the access unit being assembled
	hasVCL  bool
}

// NewSplitter returns a Splitter reading from r.
func NewSplitter(r io.Reader) *Splitter { return &Splitter{r: r} }

// Next returns the next complete access unit, or io.EOF after the last one.
func (s *Splitter) Next() (AccessUnit, error) {
	for {
		nal, err := s.nextNAL()
		if err == io.EOF {
			if s.hasVCL {
				return s.flush(), nil
			}
			return AccessUnit{}, io.EOF
		}
		if err != nil {
			return AccessUnit{}, err
		}
		if s.startsNewAU(nal) && s.hasVCL {
			au := s.flush()
			s.add(nal)
			return au, nil
		}
		s.add(nal)
	}
}

// startsNewAU reports whether nal begins a new access unit after a picture
// (ITU-T H.264 7.4.1.2.3): AUD, SPS, PPS, SEI, or a slice whose
// first_mb_in_slice is 0 (top bit of the first payload byte after the header
// is the ue(v) "1" for zero).
func (s *Splitter) startsNewAU(nal []byte) bool {
	switch NALType(nal) {
	case NALAUD, NALSPS, NALPPS, NALSEI:
		return true
	case NALSlice, NALIDR:
		return len(nal) > 1 && nal[1]&0x80 != 0
	}
	return false
}

func (s *Splitter) add(nal []byte) {
	switch NALType(nal) {
	case NALSPS:
		s.sps = append(s.sps[:0], nal...)
	case NALPPS:
		s.pps = append(s.pps[:0], nal...)
	case NALSlice, NALIDR:
		s.hasVCL = true
	}
	s.pending = append(s.pending, nal)
}

func (s *Splitter) flush() AccessUnit {
	var hasSPS, hasPPS, idr bool
	for _, n := range s.pending {
		switch NALType(n) {
		case NALSPS:
			hasSPS = true
		case NALPPS:
			hasPPS = true
		case NALIDR:
			idr = true
		}
	}
	var out []byte
	if idr && !hasSPS && s.sps != nil {
		out = append(append(out, startCode4...), s.sps...)
	}
	if idr && !hasPPS && s.pps != nil {
		out = append(append(out, startCode4...), s.pps...)
	}
	for _, n := range s.pending {
		out = append(append(out, startCode4...), n...)
	}
	s.pending = s.pending[:0]
	s.hasVCL = false
	return AccessUnit{Data: out, Keyframe: idr}
}

// nextNAL returns the next NAL unit (copied, without start code).
func (s *Splitter) nextNAL() ([]byte, error) {
	for {
		if i := findStart(s.buf); i >= 0 {
			b := s.buf[i:]
			sl := startLen(b)
			if j := findStart(b[sl:]); j >= 0 {
				nal := append([]byte(nil), trimTrailingZeros(b[sl:sl+j])...)
				s.buf = b[sl+j:]
				if len(nal) == 0 {
					continue
				}
				return nal, nil
			}
			if s.eof {
				nal := append([]byte(nil), trimTrailingZeros(b[sl:])...)
				s.buf = nil
				if len(nal) == 0 {
					return nil, io.EOF
				}
				return nal, nil
			}
			if len(b) > maxNALBytes {
				return nil, ErrNALTooLarge
			}
		} else if s.eof {
			return nil, io.EOF
		} else if len(s.buf) > maxNALBytes {
			return nil, ErrNALTooLarge
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

func (s *Splitter) fill() error {
	if len(s.buf) == cap(s.buf) {
		nb := make([]byte, len(s.buf), 2*cap(s.buf)+64<<10)
		copy(nb, s.buf)
		s.buf = nb
	}
	n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
	s.buf = s.buf[:len(s.buf)+n]
	if err == io.EOF {
		s.eof = true
		return nil
	}
	return err
}

// SplitAll splits a whole Annex-B buffer into access units.
func SplitAll(b []byte) ([]AccessUnit, error) {
	s := NewSplitter(bytes.NewReader(b))
	var out []AccessUnit
	for {
		au, err := s.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, au)
	}
}
