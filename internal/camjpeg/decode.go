package camjpeg

// DecodeReduced decodes src at a reduced DCT scale and appends its pixels
// to dst, for callers that shrink the picture anyway (a model's input): the
// IDCT of libjpeg-turbo shrinks each 8×8 block to 4×4, 2×2 or 1×1, so the
// full-size image is never produced. Of 1/8, 1/4 and 1/2 it takes the
// smallest scale whose size (each side rounded up) fits accepts. Pixels
// are RGB, three bytes each (the same YCbCr conversion as image/color), or
// with gray the luma alone, one byte each; the size is returned.
//
// ok is false, with dst unchanged, when there is nothing to gain or no
// way to do it: this build has no libjpeg-turbo (image/jpeg cannot scale in
// the IDCT), fits accepts no reduction, the JPEG is not grey or YCbCr
// (CMYK, Adobe RGB), or it does not end with its EOI marker (a frame cut
// short, which libjpeg would fill with grey where image/jpeg refuses it).
// The caller then decodes at full size as before. A JPEG libjpeg cannot
// read is an error.
//
// Safe for concurrent use; fits is called on the caller's goroutine.
func DecodeReduced(dst, src []byte, fits func(w, h int) bool, gray bool) (out []byte, w, h int, ok bool, err error) {
	if turbo == nil {
		return dst, 0, 0, false, nil
	}
	fw, fh, found := jpegSize(src)
	if !found || !endsWithEOI(src) {
		return dst, 0, 0, false, nil
	}
	denom := 0
	for _, d := range []int{8, 4, 2} {
		if fits((fw+d-1)/d, (fh+d-1)/d) {
			denom = d
			break
		}
	}
	if denom == 0 {
		return dst, 0, 0, false, nil
	}
	n := len(dst)
	out, w, h, ok, err = decodeReduced(dst, src, (fh+denom-1)/denom, gray)
	if err != nil || !ok || !fits(w, h) { // libjpeg took another scale: decode whole
		return dst[:n], 0, 0, false, err
	}
	return out, w, h, true, nil
}

// jpegSize reads the image size from src's frame header (SOFn) without
// decoding anything.
func jpegSize(src []byte) (w, h int, ok bool) {
	if len(src) < 4 || src[0] != 0xff || src[1] != 0xd8 {
		return 0, 0, false
	}
	for i := 2; i+4 <= len(src); {
		if src[i] != 0xff {
			return 0, 0, false
		}
		m := src[i+1]
		switch {
		case m == 0xff: // fill byte
			i++
			continue
		case m == 0x01 || (m >= 0xd0 && m <= 0xd7): // no length
			i += 2
			continue
		}
		n := int(src[i+2])<<8 | int(src[i+3])
		if n < 2 {
			return 0, 0, false
		}
		if m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc {
			if i+9 > len(src) {
				return 0, 0, false
			}
			h, w = int(src[i+5])<<8|int(src[i+6]), int(src[i+7])<<8|int(src[i+8])
			return w, h, w > 0 && h > 0 && w <= maxSide && h <= maxSide
		}
		if m == 0xda || m == 0xd9 { // scan or end before any frame header
			return 0, 0, false
		}
		i += 2 + n
	}
	return 0, 0, false
}

// endsWithEOI reports whether src ends with the EOI marker, zero padding
// after it allowed (some UVC cameras pad their frames). Inside the
// entropy-coded data 0xff is always followed by 0x00 or a restart marker,
// so a final 0xff 0xd9 is the real end.
func endsWithEOI(src []byte) bool {
	end := len(src)
	for end > 0 && src[end-1] == 0 {
		end--
	}
	return end >= 2 && src[end-2] == 0xff && src[end-1] == 0xd9
}
