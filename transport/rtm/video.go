package rtm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edge-agent/edge-agent/internal/clock"
	"github.com/edge-agent/edge-agent/sensors"
	"github.com/edge-agent/edge-agent/sensors/h264"
	"github.com/edge-agent/edge-agent/transport"
	"github.com/edge-agent/edge-agent/transport/rtm/internal/pionapi"
)

// FallbackProfileLevelID is what the offer announces when the video sensor
// sent no SPS within Options.SPSWait: constrained baseline, level 3.1.
const FallbackProfileLevelID = pionapi.FallbackProfileLevelID

// Detail keys of the video check in /status.
const (
	// DetailVideo is what the stream is: "constrained baseline 3.1
	// 640x480 30fps".
	DetailVideo = "video"
	// DetailVideoProblems lists, "; "-separated, why a browser may not
	// play it; absent when nothing was found.
	DetailVideoProblems = "video_problems"
	// DetailVideoProfileLevelID is the profile-level-id the session's offer
	// announced.
	DetailVideoProfileLevelID = "video_profile_level_id"
)

// problemAnnounced is the link's own problem kind: the stream's SPS is not
// what the offer announced.
const problemAnnounced h264.ProblemKind = "announced"

// ErrNotAnnounced ends a session whose stream turned out not to be what its
// offer announced (another profile, or a higher level: the camera was
// reconfigured, or sent no SPS before the offer). The next session announces
// the stream's.
var ErrNotAnnounced = errors.New("rtm video: the stream is not what the session announced")

// videoWatch is what the link keeps about its video sensor across sessions:
// the latest SPS any session saw, which the next offer announces (the hub
// keeps no keyframe for a late subscriber, so a new session could otherwise
// only learn it by waiting for the next one), and the problem kinds already
// logged, so each is logged once per link and not once per session.
//
// Concurrency: safe for concurrent use; a session's pump writes while the
// next Dial may read.
type videoWatch struct {
	mu     sync.Mutex
	sps    h264.SPS
	have   bool
	warned map[h264.ProblemKind]bool
}

// lastSPS returns the latest SPS seen, if any.
func (w *videoWatch) lastSPS() (h264.SPS, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sps, w.have
}

func (w *videoWatch) setSPS(s h264.SPS) {
	w.mu.Lock()
	w.sps, w.have = s, true
	w.mu.Unlock()
}

// firstWarning reports whether kind was not logged before, and marks it.
func (w *videoWatch) firstWarning(kind h264.ProblemKind) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.warned[kind] {
		return false
	}
	if w.warned == nil {
		w.warned = map[h264.ProblemKind]bool{}
	}
	w.warned[kind] = true
	return true
}

// publishEvery is how often the check refreshes /status, in capture time:
// often enough to follow the measured rate, rarely enough to cost nothing.
// Problems are logged only from one such interval of stream on: before it
// the rate is no measurement, and an SPS that allows reordering has not yet
// shown whether it brings B-frames.
const publishEvery = time.Second

// videoCheck inspects the access units one session publishes (an
// h264.Inspector: it parses only changed SPSs and one slice header per
// unit), shows what the stream is and its problems in /status, and logs each
// problem kind the first time the link sees it (after publishEvery of
// stream), naming the fix.
//
// A stream that is not what the offer announced ends the session through
// end (ErrNotAnnounced), once.
//
// Concurrency: not safe for concurrent use. Dial uses it while it waits
// for the first SPS, then the session's video pump, which starts after.
type videoCheck struct {
	in        *h264.Inspector
	announced h264.SPS // what the offer announced (profile, constraints, level)
	watch     *videoWatch
	stats     *transport.Stats
	log       *slog.Logger
	sensor    string
	end       func(error) // ends the session; nil until the offer is made
	ended     bool
	first     time.Time // capture time of the first unit
	published time.Time // capture time of the last refresh
}

func (l *Link) newVideoCheck() *videoCheck {
	return &videoCheck{
		in:    h264.NewInspector(l.cfg.VideoChecks.MaxKeyframeInterval.D()),
		watch: &l.video, stats: l.deps.Stats, log: l.log, sensor: l.cfg.Video,
	}
}

// add inspects one access unit and refreshes /status at the first unit,
// when the SPS appears or changes and every publishEvery of capture time.
func (c *videoCheck) add(s sensors.Sample) {
	before, _ := c.in.SPS()
	c.in.Add(s.Data, s.Time)
	after, _ := c.in.SPS()
	if c.first.IsZero() || s.Time.Before(c.first) {
		c.first = s.Time
	}
	if c.published.IsZero() || s.Time.Sub(c.published) >= publishEvery || s.Time.Before(c.published) || after != before {
		c.published = s.Time
		c.publish(s.Time.Sub(c.first) >= publishEvery)
	}
}

// publish shows the inspector's report in /status and, when settled, logs
// the problems of a kind not logged before.
func (c *videoCheck) publish(settled bool) {
	r := c.in.Report()
	if r.HaveSPS {
		c.watch.setSPS(r.SPS)
	}
	problems := r.Problems
	mismatch, ok := c.mismatch(r)
	if ok {
		problems = append(problems, mismatch)
	}
	c.stats.SetDetail(DetailVideo, describe(r))
	texts := make([]string, len(problems))
	for i, p := range problems {
		texts[i] = p.Text
		if settled && p.Kind != problemAnnounced && c.watch.firstWarning(p.Kind) {
			c.log.Warn("rtm video will not play well in a browser", "sensor", c.sensor, "problem", p.Text)
		}
	}
	c.stats.SetDetail(DetailVideoProblems, strings.Join(texts, "; "))
	if ok && c.end != nil && !c.ended {
		c.ended = true
		c.log.Warn("rtm video is not what the session announced; ending it so the next one announces the stream's",
			"sensor", c.sensor, "problem", mismatch.Text)
		c.end(fmt.Errorf("%w: %s", ErrNotAnnounced, mismatch.Text))
	}
}

// mismatch is the problem of a stream whose SPS is not what the offer
// announced: another profile, or a higher level. A browser sets its decoder
// up for the announced format (RFC 6184 §8.2.2: the profile is used
// symmetrically; the level is the highest the receiver must handle).
func (c *videoCheck) mismatch(r h264.Report) (h264.Problem, bool) {
	if !r.HaveSPS || c.announced.LevelIDC == 0 {
		return h264.Problem{}, false
	}
	a := c.announced
	if r.SPS.Profile() == a.Profile() && r.SPS.LevelIDC <= a.LevelIDC {
		return h264.Problem{}, false
	}
	return h264.Problem{Kind: problemAnnounced, Text: fmt.Sprintf(
		"the SDP announced profile-level-id %s (%s %s) but the stream has %s (%s %s): a browser may refuse or misdecode it",
		a.ProfileLevelID(), a.Profile(), a.Level(), r.SPS.ProfileLevelID(), r.SPS.Profile(), r.SPS.Level())}, true
}

// describe is the DetailVideo value: profile, level, size and measured
// rate.
func describe(r h264.Report) string {
	var b strings.Builder
	if r.HaveSPS {
		fmt.Fprintf(&b, "%s %s %dx%d", r.SPS.Profile(), r.SPS.Level(), r.SPS.Width, r.SPS.Height)
	} else {
		b.WriteString("no SPS yet")
	}
	if r.FPS > 0 {
		b.WriteString(" " + strconv.FormatFloat(math.Round(r.FPS*10)/10, 'f', -1, 64) + "fps")
	}
	return b.String()
}

// announce decides the profile-level-id the offer announces: the stream's
// (docs/protocols/webrtc-rtm.md §6.1). It takes the SPS the link last saw;
// a link that has seen none reads the session's video subscription until an
// access unit carries one (asking the source for a keyframe), at most
// SPSWait. Without one in time it announces FallbackProfileLevelID and logs
// why; the check then reports a stream that turns out to differ. The units
// read here go to the check, not to the track: the pump starts after the
// offer, and nothing is sent before the peer connects anyway.
func (s *session) announce(ctx context.Context) (string, error) {
	l := s.l
	c := s.check
	if sps, ok := l.video.lastSPS(); ok {
		c.announced = sps
		return sps.ProfileLevelID(), nil
	}
	wait := clock.AfterTimer(l.deps.Clock, l.opts.SPSWait)
	defer wait.Stop()
	asked := false
	for {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("rtm waiting for the video SPS: %w", ctx.Err())
		case <-wait.C():
			c.announced, _ = h264.ParseProfileLevelID(FallbackProfileLevelID)
			s.log.Warn("rtm no SPS from the video sensor in time; the offer announces the fallback profile",
				"sensor", l.cfg.Video, "waited", l.opts.SPSWait, "profile_level_id", FallbackProfileLevelID)
			return FallbackProfileLevelID, nil
		case smp, ok := <-s.video.C():
			if !ok {
				c.announced, _ = h264.ParseProfileLevelID(FallbackProfileLevelID)
				s.log.Warn("rtm video subscription closed before an SPS; the offer announces the fallback profile",
					"sensor", l.cfg.Video, "profile_level_id", FallbackProfileLevelID)
				return FallbackProfileLevelID, nil
			}
			c.add(smp)
			if sps, ok := c.in.SPS(); ok {
				c.announced = sps
				return sps.ProfileLevelID(), nil
			}
			if !asked {
				asked = true
				_ = s.video.RequestKeyframe() // a source that cannot is waited for
			}
		}
	}
}

// announcedOrNone names what the session's offer announced ("high 3.1
// (64001f)"), "" before the offer.
func (s *session) announcedOrNone() string {
	if s.check == nil || s.check.announced.LevelIDC == 0 {
		return ""
	}
	a := s.check.announced
	return fmt.Sprintf("%s %s (%s)", a.Profile(), a.Level(), a.ProfileLevelID())
}
