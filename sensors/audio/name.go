package audio

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/edge-agent/edge-agent/internal/retry"
)

// specKind says how a `microphone.device` value is resolved.
type specKind int

const (
	// specDefault is "default": ALSA's default PCM, as `arecord -D default`
	// opens it.
	specDefault specKind = iota
	// specCard names a sound card's device in an ALSA form (hw:CARD,DEV,
	// plughw:…, sysdefault:CARD, miniaudio's ":N,D") or a card alone by
	// its index.
	specCard
	// specWord is one word without a colon: a card's id or short name if a
	// card has it, else the name of a PCM from ALSA's configuration.
	specWord
	// specPCM is any other ALSA PCM name ("dmix:…", a PCM from
	// /etc/asound.conf with arguments); it is opened as given.
	specPCM
)

// cardPlugins are the ALSA PCM plugins whose arguments name a card (and a
// device) that /proc/asound can check. hasDev: the plugin takes DEV and
// SUBDEV after CARD.
var cardPlugins = map[string]struct{ hasDev bool }{
	"hw": {true}, "plughw": {true}, "dsnoop": {true},
	"sysdefault": {false}, "default": {false},
	"": {true}, // miniaudio's ":N,D": dsnoop if it opens, else hw
}

// deviceSpec is a parsed `microphone.device`.
type deviceSpec struct {
	raw      string
	kind     specKind
	plugin   string // for specCard: hw, plughw, dsnoop, sysdefault, default, "" (miniaudio's form), or "card" for a bare index
	card     string // for specCard: the card's index or id as written
	dev, sub int    // -1 when not given
}

// parseDevice parses the ALSA device forms users know: "default",
// "hw:CARD,DEV[,SUBDEV]", "plughw:…", "dsnoop:…", "hw:CARD" (device 0),
// "sysdefault:CARD", the keyword forms `arecord -L` prints
// ("hw:CARD=Loopback,DEV=1"), miniaudio's ":N,D", a card index or a bare
// word (a card's id or name, or a PCM name). CARD is a card's index or id.
// Only the syntax is checked here; which cards exist is resolve's business.
func parseDevice(s string) (deviceSpec, error) {
	d := deviceSpec{raw: s, dev: -1, sub: -1}
	switch {
	case s == "":
		return d, errors.New("device is empty")
	case s == "default":
		d.kind = specDefault
		return d, nil
	case isIndex(s):
		d.kind, d.plugin, d.card = specCard, "card", s
		return d, nil
	}
	plugin, args, ok := strings.Cut(s, ":")
	if !ok {
		d.kind = specWord
		return d, nil
	}
	p, known := cardPlugins[plugin]
	if !known {
		d.kind = specPCM
		return d, nil
	}
	d.kind, d.plugin = specCard, plugin
	bad := func(format string, a ...any) (deviceSpec, error) {
		return d, fmt.Errorf("device %q: %s", s, fmt.Sprintf(format, a...))
	}
	keys := []string{"CARD", "DEV", "SUBDEV"}
	if !p.hasDev {
		keys = keys[:1]
	}
	vals := make([]string, len(keys))
	keyword := false
	for i, arg := range strings.Split(args, ",") {
		k, v, isKey := strings.Cut(arg, "=")
		slot := i
		if isKey {
			keyword = true
			slot = -1
			for j, name := range keys {
				if k == name {
					slot = j
				}
			}
			if slot < 0 {
				return bad("unknown argument %q (want %s)", k, strings.Join(keys, ", "))
			}
		} else if keyword {
			return bad("positional argument %q after a KEY=value one", arg)
		} else {
			v = arg
		}
		if slot >= len(keys) {
			return bad("too many arguments (%s takes %s)", pluginName(plugin), strings.Join(keys, ","))
		}
		if vals[slot] != "" {
			return bad("%s given twice", keys[slot])
		}
		v = strings.Trim(v, `"'`)
		if v == "" {
			return bad("empty %s", keys[slot])
		}
		vals[slot] = v
	}
	if vals[0] == "" {
		form := plugin + ":CARD"
		if p.hasDev {
			form += ",DEV"
		}
		return bad("no card (write %s with CARD a card's index or id)", form)
	}
	d.card = vals[0]
	if plugin == "" && !isIndex(d.card) {
		return bad("miniaudio's :N,D form takes a card index; write hw:%s,DEV", d.card)
	}
	for i, dst := range []*int{&d.dev, &d.sub} {
		if i+1 >= len(vals) || vals[i+1] == "" {
			continue
		}
		if !isIndex(vals[i+1]) {
			return bad("%s %q is not a number", keys[i+1], vals[i+1])
		}
		*dst, _ = strconv.Atoi(vals[i+1])
	}
	if d.sub >= 0 && d.dev < 0 {
		return bad("SUBDEV without DEV")
	}
	if plugin == "" && d.sub >= 0 {
		return bad("miniaudio's :N,D form takes no subdevice; write hw:%s,%d,%d", d.card, d.dev, d.sub)
	}
	return d, nil
}

func pluginName(p string) string {
	if p == "" {
		return "miniaudio's :N,D form"
	}
	return p
}

func isIndex(s string) bool {
	if s == "" || len(s) > 3 { // ALSA has at most 32 cards, 32 devices per card
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// choice is the PCM Run opens.
type choice struct {
	// pcm is the ALSA PCM name handed to miniaudio; "" opens ALSA's default
	// PCM (miniaudio's nil device ID tries "default" first).
	pcm string
	// desc names it in logs and errors.
	desc string
}

// resolve turns a parsed device into the PCM to open, checking card forms
// against the cards present. ok is false for a bare word that names no card:
// the caller looks for it among ALSA's configured PCMs. A card that is not
// there is a transient error (a USB microphone may be plugged in later); a
// device the card does not have is permanent.
func resolve(d deviceSpec, cards []card) (c choice, ok bool, err error) {
	switch d.kind {
	case specDefault:
		return choice{desc: "ALSA's default PCM (card 0 unless ALSA is configured otherwise)"}, true, nil
	case specPCM:
		return choice{pcm: d.raw, desc: strconv.Quote(d.raw)}, true, nil
	case specWord:
		cd := findCard(cards, d.raw, true)
		if cd == nil {
			return choice{}, false, nil
		}
		return firstCapture(d, cd)
	}
	cd := findCard(cards, d.card, d.plugin == "card")
	if cd == nil {
		return choice{}, true, fmt.Errorf("device %q: no sound card %q; %s", d.raw, d.card, describeCards(cards))
	}
	if d.plugin == "card" {
		return firstCapture(d, cd)
	}
	if !cardPlugins[d.plugin].hasDev {
		// sysdefault:CARD, default:CARD: the card's default PCM as ALSA's
		// configuration for its driver defines it.
		if len(cd.capture) == 0 {
			return choice{}, true, retry.Permanent(fmt.Errorf("device %q: card %d [%s] has no capture device; %s", d.raw, cd.index, cd.id, describeCards(cards)))
		}
		return choice{pcm: d.plugin + ":" + strconv.Itoa(cd.index), desc: fmt.Sprintf("%s:%s (card %d)", d.plugin, cd.id, cd.index)}, true, nil
	}
	dev := max(d.dev, 0) // ALSA's default DEV is 0
	var p *pcmInfo
	for i := range cd.capture {
		if cd.capture[i].dev == dev {
			p = &cd.capture[i]
		}
	}
	if p == nil {
		return choice{}, true, retry.Permanent(fmt.Errorf("device %q: card %d [%s] has no capture device %d; %s", d.raw, cd.index, cd.id, dev, describeCards(cards)))
	}
	if d.sub >= p.subdevices {
		return choice{}, true, retry.Permanent(fmt.Errorf("device %q: hw:%s,%d has %d subdevices", d.raw, cd.id, dev, p.subdevices))
	}
	pcm := fmt.Sprintf("%s:%d,%d", d.plugin, cd.index, dev)
	name := fmt.Sprintf("%s:%s,%d", d.plugin, cd.id, dev)
	if d.plugin == "" {
		name = fmt.Sprintf("hw:%s,%d", cd.id, dev) // miniaudio picks dsnoop or hw
	}
	if d.sub >= 0 {
		pcm += "," + strconv.Itoa(d.sub)
		name += "," + strconv.Itoa(d.sub)
	}
	return choice{pcm: pcm, desc: fmt.Sprintf("%s (%s: %s)", name, cd.name, p.name)}, true, nil
}

// firstCapture is what a card named alone means: its first capture device,
// opened directly (hw), as `edge-agent sensors` lists it.
func firstCapture(d deviceSpec, cd *card) (choice, bool, error) {
	if len(cd.capture) == 0 {
		return choice{}, true, retry.Permanent(fmt.Errorf("device %q: card %d [%s] has no capture device", d.raw, cd.index, cd.id))
	}
	p := cd.capture[0]
	return choice{pcm: fmt.Sprintf("hw:%d,%d", cd.index, p.dev), desc: fmt.Sprintf("hw:%s,%d (%s: %s)", cd.id, p.dev, cd.name, p.name)}, true, nil
}

// findCard finds a card by index or id, as ALSA's snd_card_get_index does;
// byName also accepts a card's short name when exactly one card has it.
func findCard(cards []card, ref string, byName bool) *card {
	for i := range cards {
		if cards[i].id == ref {
			return &cards[i]
		}
		if n, err := strconv.Atoi(ref); err == nil && isIndex(ref) && cards[i].index == n {
			return &cards[i]
		}
	}
	if !byName {
		return nil
	}
	var found *card
	for i := range cards {
		if cards[i].name == ref {
			if found != nil {
				return nil // ambiguous: the caller lists the cards
			}
			found = &cards[i]
		}
	}
	return found
}
