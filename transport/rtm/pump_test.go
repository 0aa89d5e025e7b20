package rtm

import (
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/sensors"
)

func TestVideoGate(t *testing.T) {
	type step struct {
		name      string
		connected bool
		key       bool
		dropped   uint64 // the subscription's drop counter at this unit
		gap       time.Duration
		seqGap    bool // the driver lost a unit before this one
		write     bool
		dur       time.Duration
		ask       bool
	}
	const frame = time.Second / 15
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "nothing before connect, then from the next keyframe", steps: []step{
			{name: "P before connect"},
			{name: "key before connect", key: true},
			{name: "P after connect asks once", connected: true, ask: true},
			{name: "second P: no second request", connected: true},
			{name: "keyframe starts with the nominal duration", connected: true, key: true, write: true, dur: frame},
			{name: "P follows with the capture delta", connected: true, gap: 70 * time.Millisecond, write: true, dur: 70 * time.Millisecond},
		}},
		{name: "a hub drop re-gates", steps: []step{
			{name: "keyframe", connected: true, key: true, write: true, dur: frame},
			{name: "P", connected: true, write: true, dur: frame},
			{name: "P after a drop is held back", connected: true, dropped: 1, ask: true},
			{name: "keyframe resumes", connected: true, dropped: 1, key: true, write: true, dur: frame},
		}},
		{name: "a sequence gap re-gates", steps: []step{
			{name: "keyframe", connected: true, key: true, write: true, dur: frame},
			{name: "P after a gap is held back", connected: true, seqGap: true, ask: true},
			{name: "P still held", connected: true},
			{name: "keyframe resumes", connected: true, key: true, write: true, dur: frame},
			{name: "P follows", connected: true, write: true, dur: frame},
		}},
		{name: "implausible deltas fall back to the sample duration", steps: []step{
			{name: "keyframe", connected: true, key: true, write: true, dur: frame},
			{name: "clock went back", connected: true, gap: -time.Second, write: true, dur: frame},
			{name: "two seconds later", connected: true, gap: 2 * time.Second, write: true, dur: frame},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := videoGate{nominal: frame}
			at := time.Unix(1000, 0)
			seq := uint64(0)
			for _, st := range tc.steps {
				seq++
				if st.seqGap {
					seq++
				}
				if st.gap != 0 {
					at = at.Add(st.gap)
				} else {
					at = at.Add(frame)
				}
				s := sensors.Sample{Class: sensors.Video, Seq: seq, Keyframe: st.key, Time: at, Duration: frame}
				write, dur, ask := g.admit(s, st.connected, st.dropped)
				if write != st.write || ask != st.ask || (write && dur != st.dur) {
					t.Fatalf("%s: admit = (%v, %v, %v), want (%v, %v, %v)", st.name, write, dur, ask, st.write, st.dur, st.ask)
				}
			}
		})
	}
}

func TestKeyLimiter(t *testing.T) {
	k := keyLimiter{every: 500 * time.Millisecond}
	t0 := time.Unix(1000, 0)
	tests := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {100 * time.Millisecond, false}, {499 * time.Millisecond, false}, {500 * time.Millisecond, true}, {600 * time.Millisecond, false}, {2 * time.Second, true}}
	for _, tc := range tests {
		if got := k.allow(t0.Add(tc.at)); got != tc.want {
			t.Errorf("allow(+%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}
