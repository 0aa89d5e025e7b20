package audio

import (
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/conf"
	"github.com/edge-agent/edge-agent/internal/retry"
)

func TestParseDevice(t *testing.T) {
	tests := []struct {
		name, in string
		want     deviceSpec // raw is filled in from in
		err      string
	}{
		{name: "default", in: "default", want: deviceSpec{kind: specDefault, dev: -1, sub: -1}},
		{name: "hw card,dev", in: "hw:1,0", want: deviceSpec{kind: specCard, plugin: "hw", card: "1", dev: 0, sub: -1}},
		{name: "hw id,dev,sub", in: "hw:Loopback,1,0", want: deviceSpec{kind: specCard, plugin: "hw", card: "Loopback", dev: 1, sub: 0}},
		{name: "hw card only", in: "hw:Device", want: deviceSpec{kind: specCard, plugin: "hw", card: "Device", dev: -1, sub: -1}},
		{name: "plughw", in: "plughw:2,0", want: deviceSpec{kind: specCard, plugin: "plughw", card: "2", dev: 0, sub: -1}},
		{name: "arecord -L form", in: "plughw:CARD=Device,DEV=0", want: deviceSpec{kind: specCard, plugin: "plughw", card: "Device", dev: 0, sub: -1}},
		{name: "keywords in any order", in: "hw:DEV=1,CARD=Loopback,SUBDEV=3", want: deviceSpec{kind: specCard, plugin: "hw", card: "Loopback", dev: 1, sub: 3}},
		{name: "dsnoop", in: "dsnoop:CARD=Device,DEV=0", want: deviceSpec{kind: specCard, plugin: "dsnoop", card: "Device", dev: 0, sub: -1}},
		{name: "sysdefault", in: "sysdefault:CARD=Device", want: deviceSpec{kind: specCard, plugin: "sysdefault", card: "Device", dev: -1, sub: -1}},
		{name: "default of a card", in: "default:1", want: deviceSpec{kind: specCard, plugin: "default", card: "1", dev: -1, sub: -1}},
		{name: "quoted card", in: `hw:"Device",0`, want: deviceSpec{kind: specCard, plugin: "hw", card: "Device", dev: 0, sub: -1}},
		{name: "miniaudio form", in: ":1,0", want: deviceSpec{kind: specCard, plugin: "", card: "1", dev: 0, sub: -1}},
		{name: "card index", in: "2", want: deviceSpec{kind: specCard, plugin: "card", card: "2", dev: -1, sub: -1}},
		{name: "word", in: "Loopback", want: deviceSpec{kind: specWord, dev: -1, sub: -1}},
		{name: "null PCM", in: "null", want: deviceSpec{kind: specWord, dev: -1, sub: -1}},
		{name: "other plugin", in: "dmix:CARD=0", want: deviceSpec{kind: specPCM, dev: -1, sub: -1}},

		{name: "empty", in: "", err: "empty"},
		{name: "no card", in: "hw:", err: "empty CARD"},
		{name: "empty dev", in: "hw:1,", err: "empty DEV"},
		{name: "dev not a number", in: "hw:1,x", err: `DEV "x" is not a number`},
		{name: "too many", in: "hw:1,0,0,0", err: "too many arguments"},
		{name: "sysdefault takes no dev", in: "sysdefault:1,0", err: "too many arguments"},
		{name: "unknown key", in: "hw:CARD=1,DEVICE=0", err: `unknown argument "DEVICE"`},
		{name: "key twice", in: "hw:CARD=1,CARD=2", err: "CARD given twice"},
		{name: "positional after keyword", in: "hw:CARD=1,0", err: "positional argument"},
		{name: "subdev without dev", in: "hw:CARD=1,SUBDEV=0", err: "SUBDEV without DEV"},
		{name: "miniaudio form with an id", in: ":Loopback,0", err: "takes a card index"},
		{name: "miniaudio form with a subdevice", in: ":1,0,0", err: "takes no subdevice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDevice(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseDevice(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			tc.want.raw = tc.in
			if err != nil || got != tc.want {
				t.Fatalf("parseDevice(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	cards, err := readCards(writeProc(t, testCards))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in string
		pcm      string // what miniaudio is asked to open
		desc     string // part of the description
		word     bool   // not a card: left to ALSA's configured PCMs
		err      string
		perm     bool // the error is permanent
	}{
		{name: "default", in: "default", pcm: "", desc: "ALSA's default PCM"},
		{name: "hw by id", in: "hw:Loopback,1", pcm: "hw:1,1", desc: "hw:Loopback,1 (Loopback: Loopback PCM)"},
		{name: "hw by index", in: "hw:1,0", pcm: "hw:1,0", desc: "hw:Loopback,0"},
		{name: "hw subdevice", in: "hw:Loopback,1,7", pcm: "hw:1,1,7", desc: "hw:Loopback,1,7"},
		{name: "arecord -L form", in: "hw:CARD=Loopback,DEV=1", pcm: "hw:1,1"},
		{name: "plughw", in: "plughw:Device,0", pcm: "plughw:2,0", desc: "plughw:Device,0 (USB PnP Sound Device: USB Audio)"},
		{name: "hw card only is device 0", in: "hw:Device", pcm: "hw:2,0"},
		{name: "dsnoop", in: "dsnoop:2,0", pcm: "dsnoop:2,0"},
		{name: "sysdefault", in: "sysdefault:Device", pcm: "sysdefault:2", desc: "sysdefault:Device (card 2)"},
		{name: "sysdefault keyword", in: "sysdefault:CARD=2", pcm: "sysdefault:2"},
		{name: "default of a card", in: "default:Loopback", pcm: "default:1"},
		{name: "miniaudio form", in: ":2,0", pcm: ":2,0", desc: "hw:Device,0"},
		{name: "card id alone", in: "Device", pcm: "hw:2,0", desc: "hw:Device,0"},
		{name: "card index alone", in: "1", pcm: "hw:1,0", desc: "hw:Loopback,0"},
		{name: "card short name alone", in: "USB PnP Sound Device", pcm: "hw:2,0"},
		{name: "15-character id", in: "hw:sndrpihifiberry,0", pcm: "hw:3,0"},
		{name: "other PCM", in: "dmix:CARD=0", pcm: "dmix:CARD=0"},
		{name: "a PCM word", in: "null", word: true},
		{name: "card ids are exact", in: "loopback", word: true},

		{name: "no such card", in: "hw:Loopbak,1", err: `no sound card "Loopbak"; capture devices: hw:Loopback,0 (Loopback: Loopback PCM), hw:Loopback,1 (Loopback: Loopback PCM), hw:Device,0`},
		{name: "no such index", in: "7", err: `no sound card "7"`},
		{name: "sysdefault of a missing card", in: "sysdefault:Mic", err: `no sound card "Mic"`},
		{name: "short names only alone", in: "hw:USB PnP Sound Device,0", err: "no sound card"},
		{name: "no such device", in: "hw:Loopback,5", err: "card 1 [Loopback] has no capture device 5; capture devices: hw:Loopback,0", perm: true},
		{name: "playback only", in: "hw:vc4hdmi", err: "card 0 [vc4hdmi] has no capture device 0", perm: true},
		{name: "playback-only card alone", in: "vc4hdmi", err: "card 0 [vc4hdmi] has no capture device", perm: true},
		{name: "sysdefault of a playback-only card", in: "sysdefault:0", err: "has no capture device", perm: true},
		{name: "no such subdevice", in: "hw:Device,0,1", err: "hw:Device,0 has 1 subdevices", perm: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := parseDevice(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			c, ok, err := resolve(spec, cards)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) || retry.IsPermanent(err) != tc.perm {
					t.Fatalf("resolve(%q) = %+v, %v; want an error with %q (permanent %v)", tc.in, c, err, tc.err, tc.perm)
				}
			case tc.word:
				if ok || err != nil {
					t.Fatalf("resolve(%q) = %+v, %v, %v; want it left to ALSA's PCMs", tc.in, c, ok, err)
				}
			default:
				if !ok || err != nil || c.pcm != tc.pcm || !strings.Contains(c.desc, tc.desc) {
					t.Fatalf("resolve(%q) = %+v, %v, %v; want pcm %q, desc with %q", tc.in, c, ok, err, tc.pcm, tc.desc)
				}
			}
		})
	}
}

// TestResolveAmbiguousName: two cards with one short name are not picked
// by it (their ids still work).
func TestResolveAmbiguousName(t *testing.T) {
	two := []fakeCard{
		{index: 0, id: "Device", driver: "USB-Audio", name: "USB PnP Sound Device", long: "a", capture: []pcmInfo{{dev: 0, name: "USB Audio", subdevices: 1}}},
		{index: 1, id: "Device_1", driver: "USB-Audio", name: "USB PnP Sound Device", long: "b", capture: []pcmInfo{{dev: 0, name: "USB Audio", subdevices: 1}}},
	}
	cards, err := readCards(writeProc(t, two))
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := parseDevice("USB PnP Sound Device")
	if _, ok, err := resolve(spec, cards); ok || err != nil {
		t.Fatalf("ambiguous short name resolved: %v, %v", ok, err)
	}
	spec, _ = parseDevice("Device_1")
	if c, ok, err := resolve(spec, cards); !ok || err != nil || c.pcm != "hw:1,0" {
		t.Fatalf("by id: %+v, %v, %v", c, ok, err)
	}
}

func TestValidateDevice(t *testing.T) {
	for _, tc := range []struct {
		device string
		ok     bool
	}{{"default", true}, {"hw:Loopback,1", true}, {"my_dsnoop_mic", true}, {"hw:1,x", false}, {"plughw:", false}} {
		c := Config{Device: tc.device}
		c.SetDefaults()
		v := conf.NewValidator()
		c.Validate(v)
		if p := v.Problems(); (len(p) == 0) != tc.ok {
			t.Errorf("device %q: problems %v", tc.device, p)
		}
	}
}
