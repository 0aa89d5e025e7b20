package h264

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// SPS is the part of a sequence parameter set (ITU-T H.264 §7.3.2.1.1) that
// decides whether a browser can play the stream and what the SDP must
// announce: profile, constraints, level, picture size, frame rate and
// reordering.
type SPS struct {
	ProfileIDC  byte
	Constraints byte // constraint_set0..5 flags, as the byte that carries them
	LevelIDC    byte
	Width       int // after cropping
	Height      int
	// FPS is the frame rate the VUI's timing info states (0 when absent).
	FPS float64
	// MaxReorderFrames is the VUI's max_num_reorder_frames: how many frames
	// a decoder must hold back to output them in order. -1 when the SPS does
	// not say, which for main and high profiles allows B-frames.
	MaxReorderFrames int
}

// ProfileLevelID is the SDP fmtp value for this stream (RFC 6184 §8.1):
// profile_idc, the constraint byte and level_idc in hex.
func (s SPS) ProfileLevelID() string {
	return fmt.Sprintf("%02x%02x%02x", s.ProfileIDC, s.Constraints, s.LevelIDC)
}

// ParseProfileLevelID reads an SDP profile-level-id (RFC 6184 §8.1: six hex
// digits) into the SPS fields it stands for, so Profile and Level name what
// an offer announces.
func ParseProfileLevelID(id string) (SPS, error) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 3 {
		return SPS{}, fmt.Errorf("h264: profile-level-id %q: want six hex digits", id)
	}
	return SPS{ProfileIDC: b[0], Constraints: b[1], LevelIDC: b[2], MaxReorderFrames: -1}, nil
}

// Profile names the profile as RFC 6184 and browsers do.
func (s SPS) Profile() string {
	set1 := s.Constraints&0x40 != 0
	set3 := s.Constraints&0x10 != 0 // RFC 6184 table 5 maps these bits to profiles
	set4, set5 := s.Constraints&0x08 != 0, s.Constraints&0x04 != 0
	switch s.ProfileIDC {
	case 66:
		if set1 {
			return "constrained baseline"
		}
		return "baseline"
	case 77:
		if s.Constraints&0x80 != 0 {
			return "constrained baseline" // main obeying baseline too (RFC 6184 table 5)
		}
		return "main"
	case 88:
		switch s.Constraints & 0xc0 {
		case 0xc0:
			return "constrained baseline" // extended obeying baseline and main (RFC 6184 table 5)
		case 0x80:
			return "baseline"
		}
		return "extended"
	case 100:
		if set4 && set5 {
			return "constrained high"
		}
		if set4 {
			return "progressive high"
		}
		return "high"
	case 110:
		if set3 {
			return "high 10 intra"
		}
		return "high 10"
	case 122:
		return "high 4:2:2"
	case 244:
		return "high 4:4:4 predictive"
	case 44:
		return "cavlc 4:4:4 intra"
	}
	return fmt.Sprintf("profile %d", s.ProfileIDC)
}

// Level returns the level as written in the standard ("3.1", "1b").
func (s SPS) Level() string {
	if s.LevelIDC == 9 || (s.LevelIDC == 11 && s.Constraints&0x10 != 0 && (s.ProfileIDC == 66 || s.ProfileIDC == 77 || s.ProfileIDC == 88)) {
		return "1b"
	}
	if s.LevelIDC%10 == 0 {
		return fmt.Sprintf("%d", s.LevelIDC/10)
	}
	return fmt.Sprintf("%d.%d", s.LevelIDC/10, s.LevelIDC%10)
}

// levelLimit is one row of Table A-1: the macroblocks per second and per
// frame a level allows.
type levelLimit struct {
	idc         byte
	mbps, frame int
}

var levelLimits = []levelLimit{
	{9, 1485, 99}, {10, 1485, 99}, {11, 3000, 396}, {12, 6000, 396}, {13, 11880, 396},
	{20, 11880, 396}, {21, 19800, 792}, {22, 20250, 1620}, {30, 40500, 1620},
	{31, 108000, 3600}, {32, 216000, 5120}, {40, 245760, 8192}, {41, 245760, 8192},
	{42, 522240, 8704}, {50, 589824, 22080}, {51, 983040, 36864}, {52, 2073600, 36864},
	{60, 4177920, 139264}, {61, 8355840, 139264}, {62, 16711680, 139264},
}

// levelFits reports whether level idc allows width×height at fps, and the
// lowest level that would (0 when none does).
func levelFits(idc byte, width, height int, fps float64) (ok bool, need byte) {
	mbs := ((width + 15) / 16) * ((height + 15) / 16)
	rate := float64(mbs) * fps
	for _, l := range levelLimits {
		if mbs <= l.frame && rate <= float64(l.mbps) {
			if need == 0 {
				need = l.idc
			}
			if l.idc == idc {
				return true, need
			}
		}
	}
	return false, need
}

// ErrBadSPS is wrapped by every SPS parse failure.
var ErrBadSPS = errors.New("h264: malformed SPS")

// ParseSPS parses an SPS NAL unit (with its one-byte header, without the
// start code).
func ParseSPS(nal []byte) (SPS, error) {
	if NALType(nal) != NALSPS || len(nal) < 4 {
		return SPS{}, fmt.Errorf("%w: not an SPS NAL unit", ErrBadSPS)
	}
	r := &bitReader{b: unescape(nal[1:])}
	s := SPS{ProfileIDC: byte(r.bits(8)), Constraints: byte(r.bits(8)), LevelIDC: byte(r.bits(8)), MaxReorderFrames: -1}
	r.ue() // seq_parameter_set_id
	chroma := uint(1)
	switch s.ProfileIDC {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma == 3 {
			r.bits(1) // separate_colour_plane_flag
		}
		r.ue()    // bit_depth_luma_minus8
		r.ue()    // bit_depth_chroma_minus8
		r.bits(1) // qpprime_y_zero_transform_bypass_flag
		if r.bits(1) == 1 {
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := range lists {
				if r.bits(1) == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					r.skipScalingList(size)
				}
			}
		}
	}
	r.ue() // log2_max_frame_num_minus4
	switch r.ue() {
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bits(1) // delta_pic_order_always_zero_flag
		r.se()    // offset_for_non_ref_pic
		r.se()    // offset_for_top_to_bottom_field
		n := r.ue()
		for i := uint(0); i < n && r.err == nil; i++ {
			r.se()
		}
	}
	r.ue()    // max_num_ref_frames
	r.bits(1) // gaps_in_frame_num_value_allowed_flag
	wMBs, hUnits := r.ue()+1, r.ue()+1
	frameMBsOnly := r.bits(1)
	if frameMBsOnly == 0 {
		r.bits(1) // mb_adaptive_frame_field_flag
	}
	r.bits(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb uint
	if r.bits(1) == 1 {
		cl, cr, ct, cb = r.ue(), r.ue(), r.ue(), r.ue()
	}
	cropX, cropY := uint(1), 2-frameMBsOnly
	switch chroma {
	case 1:
		cropX, cropY = 2, 2*(2-frameMBsOnly)
	case 2:
		cropX = 2
	}
	if r.bits(1) == 1 {
		r.vui(&s)
	}
	if r.err != nil {
		return SPS{}, fmt.Errorf("%w: %v", ErrBadSPS, r.err)
	}
	if wMBs > 1024 || hUnits > 1024 {
		return SPS{}, fmt.Errorf("%w: %d×%d macroblocks", ErrBadSPS, wMBs, hUnits)
	}
	s.Width = int(wMBs*16 - cropX*(cl+cr))
	s.Height = int((2-frameMBsOnly)*hUnits*16 - cropY*(ct+cb))
	if s.Width <= 0 || s.Height <= 0 {
		return SPS{}, fmt.Errorf("%w: cropping leaves %d×%d", ErrBadSPS, s.Width, s.Height)
	}
	return s, nil
}

// vui reads the VUI parameters (Annex E.1.1) up to max_num_reorder_frames.
func (r *bitReader) vui(s *SPS) {
	if r.bits(1) == 1 { // aspect_ratio_info_present_flag
		if r.bits(8) == 255 {
			r.bits(32) // sar_width, sar_height
		}
	}
	if r.bits(1) == 1 { // overscan_info_present_flag
		r.bits(1)
	}
	if r.bits(1) == 1 { // video_signal_type_present_flag
		r.bits(4)
		if r.bits(1) == 1 {
			r.bits(24)
		}
	}
	if r.bits(1) == 1 { // chroma_loc_info_present_flag
		r.ue()
		r.ue()
	}
	if r.bits(1) == 1 { // timing_info_present_flag
		tick, scale := r.bits(32), r.bits(32)
		r.bits(1) // fixed_frame_rate_flag
		if tick > 0 {
			s.FPS = float64(scale) / float64(2*tick)
		}
	}
	nal, vcl := r.bits(1) == 1, false
	if nal {
		r.hrd()
	}
	if vcl = r.bits(1) == 1; vcl {
		r.hrd()
	}
	if nal || vcl {
		r.bits(1) // low_delay_hrd_flag
	}
	r.bits(1)           // pic_struct_present_flag
	if r.bits(1) == 1 { // bitstream_restriction_flag
		r.bits(1) // motion_vectors_over_pic_boundaries_flag
		r.ue()    // max_bytes_per_pic_denom
		r.ue()    // max_bits_per_mb_denom
		r.ue()    // log2_max_mv_length_horizontal
		r.ue()    // log2_max_mv_length_vertical
		reorder := r.ue()
		if r.err == nil {
			s.MaxReorderFrames = int(min(reorder, 16))
		}
	}
}

// hrd skips hrd_parameters (Annex E.1.2).
func (r *bitReader) hrd() {
	n := r.ue() + 1
	r.bits(8) // bit_rate_scale, cpb_size_scale
	for i := uint(0); i < n && r.err == nil; i++ {
		r.ue()
		r.ue()
		r.bits(1)
	}
	r.bits(20)
}

// SliceType returns the slice_type of a coded slice NAL unit (types 1 and 5)
// modulo 5: 0 P, 1 B, 2 I, 3 SP, 4 SI; -1 when nal is not a slice or is cut.
func SliceType(nal []byte) int {
	if t := NALType(nal); t != NALSlice && t != NALIDR {
		return -1
	}
	head := nal[1:min(len(nal), 16)] // two ue(v) values fit in a few bytes
	r := &bitReader{b: unescape(head)}
	r.ue() // first_mb_in_slice
	st := r.ue()
	if r.err != nil || st > 9 {
		return -1
	}
	return int(st % 5)
}

// Slice types as SliceType returns them.
const (
	SliceP = 0
	SliceB = 1
	SliceI = 2
)

// unescape removes emulation-prevention bytes (00 00 03 → 00 00).
func unescape(b []byte) []byte {
	var out []byte
	zeros := 0
	for i, c := range b {
		if zeros >= 2 && c == 3 {
			if out == nil {
				out = append(make([]byte, 0, len(b)), b[:i]...)
			}
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		if out != nil {
			out = append(out, c)
		}
	}
	if out == nil {
		return b
	}
	return out
}

// bitReader reads an RBSP MSB first. The first read past the end sets err
// and every later read returns 0, so parsers check err once at the end.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

var errShort = errors.New("ends early")

func (r *bitReader) bits(n int) uint {
	var v uint
	for range n {
		if r.pos >= 8*len(r.b) {
			r.err = errShort
			return 0
		}
		v = v<<1 | uint(r.b[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

// ue reads an unsigned Exp-Golomb code (§9.1).
func (r *bitReader) ue() uint {
	zeros := 0
	for r.bits(1) == 0 {
		if r.err != nil || zeros == 31 {
			r.err = errors.New("exp-golomb code too long")
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.bits(zeros)
}

// se reads a signed Exp-Golomb code.
func (r *bitReader) se() int {
	k := r.ue()
	if k%2 == 1 {
		return int(k+1) / 2
	}
	return -int(k / 2)
}

// skipScalingList reads past scaling_list() (§7.3.2.1.1.1).
func (r *bitReader) skipScalingList(size int) {
	last, next := 8, 8
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
		if r.err != nil {
			return
		}
	}
}
