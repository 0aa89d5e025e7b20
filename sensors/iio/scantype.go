package iio

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// ScanType is a parsed scan_elements/*_type attribute, e.g. "le:s16/16>>0"
// or "be:u12/16X2>>4": endianness, signedness, real bits, storage bits,
// repeat count and right shift.
type ScanType struct {
	BigEndian   bool
	Signed      bool
	RealBits    int
	StorageBits int
	Shift       int
	// Repeat is how many elements the channel carries (1 unless the type
	// has an "X<n>" suffix).
	Repeat int
}

// Bytes is the size of one element in the scan.
func (t ScanType) Bytes() int { return t.StorageBits / 8 }

// ParseScanType parses the kernel's type string
// "[be|le]:[s|u]<realbits>/<storagebits>[X<repeat>]>><shift>".
// It rejects anything the decoder could not handle safely (storage other than
// 8/16/32/64 bits, real bits larger than storage, shifts past the storage).
func ParseScanType(s string) (ScanType, error) {
	var t ScanType
	s = strings.TrimSpace(s)
	endian, rest, ok := strings.Cut(s, ":")
	if !ok {
		return t, fmt.Errorf("parse scan type %q: missing ':'", s)
	}
	switch endian {
	case "le":
	case "be":
		t.BigEndian = true
	default:
		return t, fmt.Errorf("parse scan type %q: endianness must be le or be", s)
	}
	if rest == "" {
		return t, fmt.Errorf("parse scan type %q: missing sign", s)
	}
	switch rest[0] {
	case 's', 'S':
		t.Signed = true
	case 'u', 'U':
	default:
		return t, fmt.Errorf("parse scan type %q: sign must be s or u", s)
	}
	rest = rest[1:]
	bits, shift, ok := strings.Cut(rest, ">>")
	if !ok {
		return t, fmt.Errorf("parse scan type %q: missing '>>'", s)
	}
	real, storage, ok := strings.Cut(bits, "/")
	if !ok {
		return t, fmt.Errorf("parse scan type %q: missing '/'", s)
	}
	t.Repeat = 1
	if st, rep, ok := strings.Cut(storage, "X"); ok {
		storage = st
		n, err := strconv.Atoi(rep)
		if err != nil || n < 1 || n > 64 {
			return t, fmt.Errorf("parse scan type %q: bad repeat", s)
		}
		t.Repeat = n
	}
	var err error
	if t.RealBits, err = strconv.Atoi(real); err != nil {
		return t, fmt.Errorf("parse scan type %q: real bits: %w", s, err)
	}
	if t.StorageBits, err = strconv.Atoi(storage); err != nil {
		return t, fmt.Errorf("parse scan type %q: storage bits: %w", s, err)
	}
	if t.Shift, err = strconv.Atoi(shift); err != nil {
		return t, fmt.Errorf("parse scan type %q: shift: %w", s, err)
	}
	switch t.StorageBits {
	case 8, 16, 32, 64:
	default:
		return t, fmt.Errorf("parse scan type %q: storage bits must be 8, 16, 32 or 64", s)
	}
	if t.RealBits < 1 || t.RealBits > t.StorageBits {
		return t, fmt.Errorf("parse scan type %q: real bits must be 1..storage bits", s)
	}
	if t.Shift < 0 || t.Shift+t.RealBits > t.StorageBits {
		return t, fmt.Errorf("parse scan type %q: shift + real bits exceed storage bits", s)
	}
	return t, nil
}

// String formats t the way the kernel does.
func (t ScanType) String() string {
	e, sg := "le", "u"
	if t.BigEndian {
		e = "be"
	}
	if t.Signed {
		sg = "s"
	}
	rep := ""
	if t.Repeat > 1 {
		rep = "X" + strconv.Itoa(t.Repeat)
	}
	return fmt.Sprintf("%s:%s%d/%d%s>>%d", e, sg, t.RealBits, t.StorageBits, rep, t.Shift)
}

// Decode returns element i of a channel whose bytes start at b: the storage
// word in its byte order, shifted right, masked to the real bits and sign
// extended. b must hold at least (i+1)*Bytes() bytes.
func (t ScanType) Decode(b []byte, i int) int64 {
	n := t.Bytes()
	b = b[i*n : (i+1)*n]
	var u uint64
	var order binary.ByteOrder = binary.LittleEndian
	if t.BigEndian {
		order = binary.BigEndian
	}
	switch n {
	case 1:
		u = uint64(b[0])
	case 2:
		u = uint64(order.Uint16(b))
	case 4:
		u = uint64(order.Uint32(b))
	case 8:
		u = order.Uint64(b)
	}
	u >>= uint(t.Shift)
	if t.RealBits < 64 {
		u &= (uint64(1) << uint(t.RealBits)) - 1
		if t.Signed && u&(uint64(1)<<uint(t.RealBits-1)) != 0 {
			u |= ^uint64(0) << uint(t.RealBits)
		}
	}
	return int64(u)
}
