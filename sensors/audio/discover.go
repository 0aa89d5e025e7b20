package audio

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ProcRoot is where the kernel lists the ALSA sound cards.
const ProcRoot = "/proc/asound"

// Device is one capture device, as listed by `edge-agent sensors`.
type Device struct {
	// ID is what `microphone.device` takes: "hw:CARD,DEV" (CARD the card's
	// id) for a sound card's capture device, or the name of another ALSA
	// PCM from ALSA's configuration ("null", "pulse", …).
	ID string
	// Name is the PCM device's name (e.g. "USB Audio"); two devices of one
	// card may share it, their IDs differ.
	Name string
	// Card is the card's index, -1 for a PCM that is not one card's device.
	Card int
	// CardID is the card's id (what hw:CARD names), CardName its short
	// name; both empty for other PCMs.
	CardID, CardName string
	// PCM is the device number on the card (the DEV of hw:CARD,DEV).
	PCM int
	// Rates are the sample rates in Hz the device offers, ascending, as
	// ALSA answers when the device is opened and asked (a USB microphone's
	// hw: device often offers only 44100 and 48000; the microphone captures
	// at one it offers and converts). Empty when it could not be asked, and
	// RatesError says why: usually busy, because another program or the
	// running agent captures from it.
	Rates      []int
	RatesError string
}

// ErrNotCompiled is returned by every microphone entry point in builds
// without cgo: miniaudio is C, so the pure-Go (e.g. ARMv6) binary has no
// microphone support. Such boards can use a `command` sensor running arecord.
var ErrNotCompiled = errors.New("microphone support not compiled in (this build has no cgo); use a command sensor with arecord instead")

// card is one ALSA sound card from /proc/asound/cards with its capture
// devices (/proc/asound/cardN/pcmDc/info).
type card struct {
	index                  int
	id, driver, name, long string
	capture                []pcmInfo // by device number
}

// pcmInfo is one capture PCM device of a card.
type pcmInfo struct {
	dev        int
	name       string
	subdevices int
}

// cardLine is the first of a card's two lines in /proc/asound/cards:
// "%2i [%-15s]: %s - %s" (index, id, driver, short name).
var cardLine = regexp.MustCompile(`^\s*(\d+)\s+\[([^\]]*)\]:\s*(.*?) - (.*)$`)

// readCards reads the sound cards and their capture devices under root
// (normally /proc/asound). A missing root or an empty list is no card, not
// an error: a kernel without sound support has no /proc/asound.
func readCards(root string) ([]card, error) {
	f, err := os.Open(filepath.Join(root, "cards"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sound cards: %w", err)
	}
	defer f.Close()
	var cards []card
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := cardLine.FindStringSubmatch(sc.Text())
		if m == nil {
			// The long name's line, or "--- no soundcards ---".
			if n := len(cards); n > 0 && cards[n-1].long == "" {
				cards[n-1].long = strings.TrimSpace(sc.Text())
			}
			continue
		}
		idx, _ := strconv.Atoi(m[1])
		c := card{index: idx, id: strings.TrimSpace(m[2]), driver: strings.TrimSpace(m[3]), name: strings.TrimSpace(m[4])}
		if c.capture, err = readCapture(filepath.Join(root, "card"+m[1])); err != nil {
			return nil, fmt.Errorf("read sound card %d (%s): %w", idx, c.id, err)
		}
		cards = append(cards, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read sound cards: %w", err)
	}
	return cards, nil
}

// pcmCaptureDir matches a card's capture device directories ("pcm0c").
var pcmCaptureDir = regexp.MustCompile(`^pcm(\d+)c$`)

// readCapture lists a card's capture devices from its pcmDc/info files.
// A card that vanished meanwhile (unplugged) has none.
func readCapture(dir string) ([]pcmInfo, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []pcmInfo
	for _, e := range ents {
		m := pcmCaptureDir.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		p := pcmInfo{subdevices: 1}
		p.dev, _ = strconv.Atoi(m[1])
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "info"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case "name":
				p.name = v
			case "subdevices_count":
				if n, err := strconv.Atoi(v); err == nil && n > 0 {
					p.subdevices = n
				}
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dev < out[j].dev })
	return out, nil
}

// cardDevices lists the cards' capture devices under the names users give
// them (hw:CARD,DEV with the card's id).
func cardDevices(cards []card) []Device {
	var out []Device
	for _, c := range cards {
		for _, p := range c.capture {
			out = append(out, Device{ID: "hw:" + c.id + "," + strconv.Itoa(p.dev), Name: p.name,
				Card: c.index, CardID: c.id, CardName: c.name, PCM: p.dev})
		}
	}
	return out
}

// describeCards says what capture devices exist, for errors about a device
// that does not.
func describeCards(cards []card) string {
	devs := cardDevices(cards)
	if len(devs) == 0 {
		if len(cards) == 0 {
			return "no sound card is present (" + ProcRoot + "/cards lists none)"
		}
		names := make([]string, len(cards))
		for i, c := range cards {
			names[i] = fmt.Sprintf("%d [%s] %s", c.index, c.id, c.name)
		}
		return "no sound card has a capture device (cards: " + strings.Join(names, ", ") + ")"
	}
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = fmt.Sprintf("%s (%s: %s)", d.ID, d.CardName, d.Name)
	}
	return "capture devices: " + strings.Join(names, ", ")
}
