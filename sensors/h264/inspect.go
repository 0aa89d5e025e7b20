package h264

import (
	"bytes"
	"fmt"
	"math"
	"time"
)

// DefaultMaxKeyframeGap is the longest keyframe interval the Inspector
// accepts by default: a browser that joins or loses a packet waits up to one
// interval for a picture, and WebRTC receivers ask for keyframes they may
// not get from an encoder that cannot be asked.
const DefaultMaxKeyframeGap = 2 * time.Second

// Report is what an Inspector learned about a stream so far.
type Report struct {
	// SPS is the latest sequence parameter set (zero until one was seen).
	SPS SPS
	// HaveSPS is set once an SPS parsed.
	HaveSPS bool
	// FPS is the frame rate measured from the access units' times (0 until
	// two were seen).
	FPS float64
	// Frames counts the access units seen.
	Frames int
	// BFrames counts access units with a B slice.
	BFrames int
	// KeyframeGap is the longest interval between keyframes seen, or since
	// the last keyframe when that is longer; before the first keyframe, the
	// time since the first frame.
	KeyframeGap time.Duration
	// KeyframesWithoutParams counts IDR access units without SPS and PPS in
	// front: a receiver that joins at one of them cannot decode it.
	KeyframesWithoutParams int
	// Problems says, one each, why a browser may not play the stream. Empty
	// when nothing was found.
	Problems []Problem
}

// Inspector watches the access units of a stream and reports what would
// keep a browser from playing it over WebRTC: B-frames, a profile browsers
// do not decode, a level too low for the picture size and rate, keyframes
// too far apart, keyframes without their parameter sets. It parses only the
// SPS (when it changes) and the first slice header of each access unit.
// Not safe for concurrent use.
type Inspector struct {
	maxGap  time.Duration
	sps     []byte
	rep     Report
	spsErr  error
	first   time.Time
	last    time.Time
	lastKey time.Time
}

// NewInspector returns an Inspector that reports keyframes further apart
// than maxGap (DefaultMaxKeyframeGap when 0).
func NewInspector(maxGap time.Duration) *Inspector {
	if maxGap <= 0 {
		maxGap = DefaultMaxKeyframeGap
	}
	return &Inspector{maxGap: maxGap}
}

// Add inspects one Annex-B access unit captured at t.
func (in *Inspector) Add(au []byte, t time.Time) {
	var haveSPS, havePPS, idr, sliceSeen bool
	for _, nal := range SplitNALs(au) {
		switch NALType(nal) {
		case NALSPS:
			haveSPS = true
			in.parseSPS(nal)
		case NALPPS:
			havePPS = true
		case NALIDR, NALSlice:
			idr = idr || NALType(nal) == NALIDR
			if !sliceSeen {
				sliceSeen = true
				if SliceType(nal) == SliceB {
					in.rep.BFrames++
				}
			}
		}
	}
	if !sliceSeen {
		return // parameter sets or SEI alone: not a picture
	}
	in.rep.Frames++
	if in.first.IsZero() {
		in.first = t
	} else if span := t.Sub(in.first); span > 0 {
		in.rep.FPS = float64(in.rep.Frames-1) / span.Seconds()
	}
	in.last = t
	if idr {
		if !haveSPS || !havePPS {
			in.rep.KeyframesWithoutParams++
		}
		if !in.lastKey.IsZero() {
			in.rep.KeyframeGap = max(in.rep.KeyframeGap, t.Sub(in.lastKey))
		}
		in.lastKey = t
	}
}

func (in *Inspector) parseSPS(nal []byte) {
	if bytes.Equal(nal, in.sps) {
		return
	}
	in.sps = append(in.sps[:0], nal...)
	s, err := ParseSPS(nal)
	in.spsErr = err
	if err == nil {
		in.rep.SPS, in.rep.HaveSPS = s, true
	}
}

// SPS returns the latest SPS that parsed, if any; unlike Report it costs
// nothing, so a caller may ask after every Add.
func (in *Inspector) SPS() (SPS, bool) { return in.rep.SPS, in.rep.HaveSPS }

// Report returns what was learned so far, with the problems found.
func (in *Inspector) Report() Report {
	r := in.rep
	if !in.lastKey.IsZero() {
		r.KeyframeGap = max(r.KeyframeGap, in.last.Sub(in.lastKey))
	} else if r.Frames > 0 {
		// No keyframe yet: the stream has gone at least this long without one.
		r.KeyframeGap = in.last.Sub(in.first)
	}
	r.Problems = in.problems(r)
	return r
}

// ProblemKind names a kind of problem, the same in every report, so a caller
// can tell a new problem from one it has already reported (the texts carry
// counts that change).
type ProblemKind string

// The problems an Inspector reports.
const (
	ProblemBadSPS      ProblemKind = "bad-sps"      // the latest SPS does not parse
	ProblemNoSPS       ProblemKind = "no-sps"       // frames but no SPS for a keyframe interval
	ProblemBFrames     ProblemKind = "b-frames"     // B slices seen, or none yet but the SPS allows reordering
	ProblemProfile     ProblemKind = "profile"      // a profile browsers do not decode
	ProblemLevel       ProblemKind = "level"        // the level is too low for size × rate
	ProblemKeyframeGap ProblemKind = "keyframe-gap" // keyframes further apart than the limit
	ProblemNoParams    ProblemKind = "no-params"    // keyframes without SPS/PPS in front
)

// Problem is one reason a browser may not play the stream.
type Problem struct {
	Kind ProblemKind
	// Text says what is wrong, with the figures, and how to fix it at the
	// encoder, in one sentence without semicolons (callers join several
	// with "; ").
	Text string
}

func (p Problem) String() string { return p.Text }

// BrowserProfile reports whether WebRTC in browsers can negotiate profile
// (as SPS.Profile names it): libwebrtc, under Chromium's and Safari's
// WebRTC, recognises constrained baseline, baseline, main, high and
// constrained high, and treats any other profile-level-id as no H.264 it
// knows (api/video_codecs/h264_profile_level_id.cc). Which of these a given
// browser decodes is narrower (docs/protocols/webrtc-rtm.md §6.1).
func BrowserProfile(profile string) bool {
	switch profile {
	case "constrained baseline", "baseline", "main", "high", "constrained high":
		return true
	}
	return false
}

func (in *Inspector) problems(r Report) []Problem {
	var out []Problem
	add := func(kind ProblemKind, format string, a ...any) {
		out = append(out, Problem{Kind: kind, Text: fmt.Sprintf(format, a...)})
	}
	if in.spsErr != nil {
		add(ProblemBadSPS, "%v", in.spsErr)
	}
	span := in.last.Sub(in.first)
	// A reader that joins mid-stream sees frames before the next SPS: only
	// a stream that went a whole keyframe interval without one lacks it.
	if r.Frames > 0 && !r.HaveSPS && span > in.maxGap {
		add(ProblemNoSPS, "no SPS in %.1fs: a receiver cannot start decoding", span.Seconds())
	}
	if r.BFrames > 0 {
		add(ProblemBFrames, "B-frames (%d of %d frames): WebRTC receivers drop reordered frames, so encode without them (x264 bframes=0, or profile baseline)", r.BFrames, r.Frames)
	} else if r.HaveSPS && r.SPS.MaxReorderFrames > 0 {
		add(ProblemBFrames, "the SPS allows %d reordered frames (max_num_reorder_frames): browsers delay or drop output, so encode without B-frames", r.SPS.MaxReorderFrames)
	}
	if r.HaveSPS {
		if !BrowserProfile(r.SPS.Profile()) {
			add(ProblemProfile, "profile %s (profile_idc %d): browsers negotiate constrained baseline, main and high only", r.SPS.Profile(), r.SPS.ProfileIDC)
		}
		// A measured rate jitters around the nominal one (30.05 for 30
		// fps would fail level 3.1 at 720p): half a frame per second is
		// the precision the level table needs, and under a second of
		// frames is no measurement (the SPS's rate counts until then).
		fps := r.SPS.FPS
		if span >= time.Second {
			fps = math.Round(r.FPS*2) / 2
		}
		if ok, need := levelFits(r.SPS.LevelIDC, r.SPS.Width, r.SPS.Height, fps); !ok && fps > 0 {
			want := "none"
			if need != 0 {
				want = SPS{LevelIDC: need}.Level()
			}
			add(ProblemLevel, "level %s is too low for %dx%d at %.0f fps (needs %s): decoders may refuse it", r.SPS.Level(), r.SPS.Width, r.SPS.Height, fps, want)
		}
	}
	if r.KeyframeGap > in.maxGap {
		add(ProblemKeyframeGap, "keyframes %.1fs apart (limit %.1fs): a receiver that joins or loses a packet waits that long for a picture, so set the encoder's intra period lower", r.KeyframeGap.Seconds(), in.maxGap.Seconds())
	}
	if r.KeyframesWithoutParams > 0 {
		add(ProblemNoParams, "%d keyframes without SPS/PPS in front: receivers that join there cannot decode (rpicam-vid --inline, x264 repeat-headers)", r.KeyframesWithoutParams)
	}
	return out
}
